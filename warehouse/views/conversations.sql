-- The simulated-user conversations' views (issue 37): how the simulated users behave, and how
-- far the conversation judge agrees with the sandbox's ground truth.

-- one row per round, persona kind and model: how its conversations went (the realism figures:
-- how often the simulated user ends satisfied, gives up or pushes back, and how long it talks)
create or replace view v_sim_realism as
with conversations as (
    select
        round_id,
        persona_kind,
        model_id,
        n_user_turns,
        n_pushbacks,
        ended_by,
        handled_right
    from sim_conversations
), per_kind as (
    select
        round_id,
        persona_kind,
        model_id,
        count(*) as n_conversations,
        avg(n_user_turns) as mean_user_turns,
        avg((ended_by = 'done')::int) as done_share,
        avg((ended_by = 'gave_up')::int) as gave_up_share,
        avg((ended_by = 'max_turns')::int) as max_turns_share,
        avg((ended_by = 'unparsed')::int) as unparsed_share,
        sum(n_pushbacks) / nullif(sum(n_user_turns - 1), 0) as pushback_share,  -- of replies
        avg(handled_right::int) as handled_right_share
    from conversations
    group by round_id, persona_kind, model_id
)
select * from per_kind order by round_id, persona_kind, model_id;

-- one row per round and persona kind: the conversation judge against the ground truth (where
-- exactly one of the two conversations handled the persona's move right, by the sandbox's
-- checker: does the battle's outcome name that one?)
create or replace view v_conversation_calibration as
with battles_with_truth as (
    select
        b.round_id,
        a.persona_kind,
        b.outcome,
        a.handled_right as right_a,
        c.handled_right as right_b
    from battles as b
    join sim_conversations as a
        on a.round_id = b.round_id and a.prompt_id = b.prompt_id and a.model_id = b.model_a
    join sim_conversations as c
        on c.round_id = b.round_id and c.prompt_id = b.prompt_id and c.model_id = b.model_b
    where b.purpose = 'eval_conversation'
), decisive_truth as (
    select
        round_id,
        persona_kind,
        outcome,
        case when right_a then 'win' else 'loss' end as true_outcome
    from battles_with_truth
    where right_a is not null and right_b is not null and right_a <> right_b
), per_kind as (
    select
        round_id,
        persona_kind,
        count(*) as n_decisive_truth,
        sum((outcome = true_outcome)::int) as n_agree,
        avg((outcome = true_outcome)::int) as agreement
    from decisive_truth
    group by round_id, persona_kind
)
select * from per_kind order by round_id, persona_kind;
