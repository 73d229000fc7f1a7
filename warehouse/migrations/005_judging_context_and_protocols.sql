-- schema version 5 (judging): how much of each conversation the judge and the references saw.
-- context_turns_cut counts the oldest turns dropped to fit the endpoint's max_context_chars
-- (0: the whole conversation was sent).

alter table judgments add column context_turns_cut integer default 0;
alter table responses add column context_turns_cut integer default 0;

-- the final assistant turn of an ingested conversation (or Alpaca's `output`), taken off the
-- prompt and kept as a reference answer; null when the record had none
alter table prompts add column reference_answer varchar;
