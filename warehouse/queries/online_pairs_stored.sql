-- The round's online-dpo pairs already stored (a rerun of the round makes none again): one row
-- per pair. params: round_id
with stored as (
    select pair_id, prompt_id, chosen_response_id, rejected_response_id, score_gap
    from preference_pairs
    where kind = 'online-dpo' and round_id = $round_id
)
select * from stored order by prompt_id
