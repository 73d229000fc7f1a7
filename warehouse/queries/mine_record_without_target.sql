-- The round's SFT battles left without an example by the refine rule (its latest mining).
-- params: round_id, n_without_target
update rounds set n_sft_without_target = $n_without_target where round_id = $round_id
