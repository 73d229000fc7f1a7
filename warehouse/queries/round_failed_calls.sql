-- one row per finished round whose train calls ended in errors: prompts of its slice that
-- some model (the champion or a reference) left unanswered, train battles in error, and SFT
-- battles the refine rule left without a target (training.mining.sft_rule refine)
with finished as (
    select round_id, champion_before, n_sft_without_target from rounds where status = 'done'
), slice as (
    select f.round_id, p.prompt_id
    from finished as f
    join prompts as p on p.slice_id = f.round_id and p.split = 'pool' and p.status = 'active'
), answered as (
    select s.round_id, s.prompt_id, count(distinct r.model_id) as n_models
    from slice as s
    join responses as r on r.round_id = s.round_id and r.prompt_id = s.prompt_id
    group by s.round_id, s.prompt_id
), unanswered as (
    select s.round_id, count(*) as n_unanswered
    from slice as s
    left join answered as a using (round_id, prompt_id)
    where coalesce(a.n_models, 0) < $n_models
    group by s.round_id
), error_battles as (
    select b.round_id, count(*) as n_error_battles
    from battles as b
    join finished using (round_id)
    where b.purpose = 'train' and b.outcome = 'error'
    group by b.round_id
), without_target as (
    select round_id, n_sft_without_target from finished where n_sft_without_target > 0
), failed_calls as (
    select
        round_id,
        coalesce(u.n_unanswered, 0) as n_unanswered,
        coalesce(e.n_error_battles, 0) as n_error_battles,
        coalesce(t.n_sft_without_target, 0) as n_sft_without_target
    from unanswered as u
    full outer join error_battles as e using (round_id)
    full outer join without_target as t using (round_id)
)
select * from failed_calls order by round_id
