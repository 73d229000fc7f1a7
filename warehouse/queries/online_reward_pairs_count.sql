-- How many DPO pairs the online-dpo stage's reward models could be fit on, as v_dpo_pairs
-- exports them: the round's own and the earlier rounds' (the caller caps those by
-- training.online_dpo.reward_fit_replay_rows). params: round_id
select
    count(*) filter (where round_id = $round_id) as n_this_round,
    count(*) filter (where round_id < $round_id) as n_earlier
from v_dpo_pairs
where round_id <= $round_id
