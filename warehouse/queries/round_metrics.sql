-- One row per round, most telling columns first: the held-out A/B result, the decision and
-- the checker accuracy, then who was champion, the mined counts and the time.
with summary as (
    select * from v_round_summary
), latest_evaluation as (
    select round_id, lc_win_rate from evaluations
    qualify row_number() over (partition by round_id order by created_at desc) = 1
), round_metrics as (
    select
        s.round_id,
        s.stage,
        s.win_rate,
        s.win_rate_ci_low,
        s.win_rate_ci_high,
        e.lc_win_rate,
        s.promoted,
        s.sandbox_accuracy,
        s.champion_before,
        s.champion_after,
        s.n_battles,
        s.n_sft,
        s.n_dpo,
        s.n_rm,
        s.wall_s
    from summary as s
    left join latest_evaluation as e using (round_id)
)
select * from round_metrics order by round_id
