-- How many DPO pairs the online-dpo stage's reward models would be fit on: every pair of kind
-- dpo mined up to and including the round, as v_dpo_pairs exports them. params: round_id
with pairs as (
    select pair_id from v_dpo_pairs where round_id <= $round_id
)
select count(*) as n_pairs from pairs
