-- schema version 15: online iterative DPO (the online-dpo stage, tasks/online_pairs.py). The
-- champion samples n answers per prompt of its round's slice (`responses` rows of the champion
-- with sample_idx 1..n; sample 0 stays the round's own answer, the one its battles judged);
-- reward models (and, where weighted, the skill checkers) score them, and each prompt's best
-- and worst sample form a preference pair that no battle decided.

-- preference_pairs: still one row per mined pair. Online rows: kind `online-dpo`, origin
-- `online`, one per (round, prompt) whose best and worst sample differ by the stage's
-- min_score_gap or more; battle_id null; chosen/rejected_response_id are the samples (their
-- sample_idx is on `responses`); chosen_model = rejected_model = the champion; rule_kind
-- `online-dpo`, rule_min_gap the stage's min_score_gap; score_gap = chosen_score -
-- rejected_score. Battle and feedback rows leave the new columns null.
alter table preference_pairs alter column battle_id drop not null;   -- null: online (and feedback) rows
-- battle | feedback | online (migration 014 adds it; repeated here so the order never matters)
alter table preference_pairs add column if not exists origin varchar default 'battle';
-- online: the chosen and the rejected sample's reward (the reward models' standardised mean,
-- mixed with the checker's +1/-1 by verifiable_reward_weight)
alter table preference_pairs add column chosen_score double;
alter table preference_pairs add column rejected_score double;
alter table preference_pairs add column n_scored integer;   -- online: the prompt's samples scored
alter table preference_pairs add column scored_by varchar;  -- online: which reward models, checker weight
