-- Why the round kept or moved the champion, and the SFT battles its refine rule left without
-- a target (null for the arena rule). params: round_id
select decision_reason, n_sft_without_target from rounds where round_id = $round_id
