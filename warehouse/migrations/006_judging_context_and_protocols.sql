-- schema version 5 (judging): how much of each conversation the judge and the references saw.
-- context_turns_cut counts the oldest turns dropped to fit the endpoint's max_context_chars
-- (0: the whole conversation was sent).

alter table judgments add column context_turns_cut integer default 0;
alter table responses add column context_turns_cut integer default 0;

-- the final assistant turn of an ingested conversation (or Alpaca's `output`), taken off the
-- prompt and kept as a reference answer; null when the record had none
alter table prompts add column reference_answer varchar;

-- verdict protocols: how strongly a label prefers the winner (five labels: 2 for A>>B, 1 for
-- A>B, 0 for A=B; pair labels: 1 decisive, 0 tie); a battle's is the mean of its two games'
alter table judgments add column label_strength integer;
alter table battles add column label_strength double;
-- mining by label strength: a battle without scores has no score gap
alter table sft_examples alter column score_gap drop not null;
alter table preference_pairs alter column score_gap drop not null;
alter table sft_examples add column label_strength double;
alter table preference_pairs add column label_strength double;
