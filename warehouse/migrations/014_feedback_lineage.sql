-- schema version 14: users' feedback becomes training data (issue 32), with lineage. Beside
-- the rows mined from judged battles, sft_examples, preference_pairs and kto_examples hold rows
-- mined from logged conversations and their feedback (tasks/mine_feedback.py,
-- warehouse/queries/mine_feedback_*.sql). A feedback row points back to the logged answer it
-- learns from (conversation_id, turn_index: log_turns) and to the feedback rows whose label
-- decided it (feedback_ids: feedback.feedback_id). Its key holds no round: a logged exchange
-- (user, model, context, answer: a log with one record per request repeats an answer inside
-- later requests, and conversation_id/turn_index name its shortest copy) is mined once per
-- kind, by the first round that finds its feedback, and later rounds skip it.
-- Battle rows keep their columns; the lineage columns are null on them.

-- sft_examples: still one row per mined SFT example. Battle rows: one per (round, prompt),
-- origin `battle`. Feedback rows: one per logged exchange, origin `feedback`, with
-- target_source `feedback` (an answer with positive feedback: the target is the logged
-- answer, log_turns at turn_index) or `correction` (an answer the user corrected in explicit
-- feedback: the target is feedback.correction of feedback_ids[1]); the prompt is the
-- conversation before turn_index and prompt_id its opening prompt in the pool.
alter table sft_examples add column origin varchar default 'battle';  -- battle | feedback
alter table sft_examples add column conversation_id varchar;          -- feedback: log_conversations
alter table sft_examples add column turn_index integer;               -- feedback: the answer's turn
-- feedback: the feedback rows behind the label, all of the deciding source (explicit wins);
-- a correction row first where there is one
alter table sft_examples add column feedback_ids varchar[];
alter table sft_examples alter column battle_id drop not null;       -- null: feedback rows
alter table sft_examples alter column response_id drop not null;     -- null: feedback rows
alter table sft_examples alter column source_model drop not null;    -- null: no model logged
alter table sft_examples alter column rule_min_gap drop not null;    -- null: feedback rows

-- preference_pairs: still one row per mined pair (kind dpo or rm). Battle rows: one per
-- (kind, round, prompt). Feedback rows: one per (kind, positive answer, negative answer) to the
-- same context (the same turns before the answer: the same opening prompt for a first answer),
-- origin `feedback`; each logged answer is in at most one feedback pair per kind.
alter table preference_pairs add column origin varchar default 'battle';     -- battle | feedback
alter table preference_pairs add column chosen_conversation_id varchar;      -- feedback: positive
alter table preference_pairs add column chosen_turn_index integer;
alter table preference_pairs add column rejected_conversation_id varchar;    -- feedback: negative
alter table preference_pairs add column rejected_turn_index integer;
alter table preference_pairs add column chosen_feedback_ids varchar[];       -- the labels behind
alter table preference_pairs add column rejected_feedback_ids varchar[];     -- each side
-- battle_id: null on feedback rows; its not null is dropped by migration 015 (online pairs), not
-- here: on a DuckLake, dropping a not null that is already gone fails
alter table preference_pairs alter column chosen_response_id drop not null;
alter table preference_pairs alter column rejected_response_id drop not null;
alter table preference_pairs alter column chosen_model drop not null;        -- null: not logged
alter table preference_pairs alter column rejected_model drop not null;
alter table preference_pairs alter column rule_min_gap drop not null;

-- kto_examples: still one row per labelled answer. Its `source` already says the origin
-- (battle | feedback); feedback rows: one per logged exchange with a resolved positive
-- (desirable) or negative (undesirable) label, n_battles 0.
alter table kto_examples add column conversation_id varchar;
alter table kto_examples add column turn_index integer;
alter table kto_examples add column feedback_ids varchar[];
alter table kto_examples alter column response_id drop not null;   -- null: feedback rows
alter table kto_examples alter column source_model drop not null;  -- null: no model logged
alter table kto_examples alter column rule_min_gap drop not null;  -- null: feedback rows
