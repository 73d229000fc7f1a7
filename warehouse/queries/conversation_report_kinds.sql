-- The conversation artifact's rows: per persona kind of one round, and over every kind ('all'),
-- the agreement counts of v_conversation_calibration beside the simulated users' behaviour.
-- params: round_id
with calibration as (
    select * from v_conversation_calibration where round_id = $round_id
), behaviour as (
    select
        persona_kind,
        count(*) as n_conversations,
        avg(n_user_turns) as mean_user_turns,
        avg((n_pushbacks > 0)::int) as pushed_back_share,
        avg((ended_by = 'gave_up')::int) as gave_up_share,
        avg((ended_by = 'done')::int) as satisfied_share
    from v_sim_conversation_verdicts
    where round_id = $round_id
    group by grouping sets ((persona_kind), ())
    having count(*) > 0  -- no 'all' row for a round without conversations
), counts as (
    select
        persona_kind,
        sum(n_decisive_truth)::bigint as n_decisive_truth,
        sum(n_agree)::bigint as n_agree,
        sum(n_user_truth)::bigint as n_user_truth,
        sum(n_user_agree_truth)::bigint as n_user_agree_truth,
        sum(n_user_feedback)::bigint as n_user_feedback,
        sum(n_user_agree_feedback)::bigint as n_user_agree_feedback,
        sum(n_judge_feedback)::bigint as n_judge_feedback,
        sum(n_judge_agree_feedback)::bigint as n_judge_agree_feedback
    from calibration
    group by grouping sets ((persona_kind), ())
), rows as (
    select coalesce(b.persona_kind, 'all') as persona_kind, b.* exclude (persona_kind),
        c.* exclude (persona_kind)
    from behaviour as b
    left join counts as c on c.persona_kind is not distinct from b.persona_kind
)
select * from rows order by persona_kind = 'all', persona_kind
