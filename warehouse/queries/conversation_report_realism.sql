-- The simulated users beside the logged users, per model of one round. params: round_id
select * from v_realism_vs_logs where round_id = $round_id order by model_id
