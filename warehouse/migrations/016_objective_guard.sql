-- schema version 16: the gate's objective guard (issue 32) and its general-set limit against
-- the first champion (issue 31), stored with each A/B. evaluations keeps its grain: one row per
-- A/B comparison (candidate vs champion on the held-out eval prompts).
--
-- The objective set is where a reply is right or wrong whoever judges it: the sandbox's
-- checkers on the held-out prompts (source `sandbox_checkers`, both models' stored eval
-- answers) or a user's checkable file, evaluation.objective_set (source `objective_set`, both
-- models answering it greedily from their checkpoints). Accuracies are over the same items for
-- both models; intervals are seeded percentile bootstraps over items.
alter table evaluations add column objective_source varchar;            -- sandbox_checkers | objective_set; null: none
alter table evaluations add column objective_set_sha256 varchar;        -- objective_set: sha256 of the file's bytes
alter table evaluations add column objective_n_items integer;           -- items checked for both models
alter table evaluations add column objective_correct_candidate integer;
alter table evaluations add column objective_correct_champion integer;
alter table evaluations add column objective_accuracy_candidate double;
alter table evaluations add column objective_accuracy_candidate_ci_low double;
alter table evaluations add column objective_accuracy_candidate_ci_high double;
alter table evaluations add column objective_accuracy_champion double;
alter table evaluations add column objective_accuracy_champion_ci_low double;
alter table evaluations add column objective_accuracy_champion_ci_high double;
alter table evaluations add column objective_max_drop double;           -- the limit applied; null: reported only
alter table evaluations add column objective_outcome varchar;           -- passed | refused | reported | cannot_apply | off

-- The first champion (round 1's champion before) and its general-set NLL, when
-- evaluation.general_max_nll_increase_from_first was set; its general_checks row is stored
-- under the round that read it (general_checks: one row per model version checked in a round,
-- now the champion, the candidate and, with that limit, the first champion).
alter table evaluations add column general_first_champion varchar;
alter table evaluations add column general_first_nll double;
