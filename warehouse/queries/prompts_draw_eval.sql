-- the held-out eval draw: eval_size active, never-battled pool prompts, stratified by category
-- (proportional quotas, largest remainder), seeded order inside each category
-- parameters: seed, eval_size, eval_size
with candidates as (
    select
        prompt_id,
        messages,
        coalesce(category, '') as stratum,
        md5(? || ':' || prompt_id) as draw_key
    from prompts
    where split = 'pool' and status = 'active' and slice_id is null
), strata as (
    select stratum, count(*) as n_prompts from candidates group by stratum
), exact_quotas as (
    select stratum, n_prompts, ? * n_prompts / sum(n_prompts) over () as exact_quota
    from strata
), floor_quotas as (
    select
        stratum,
        floor(exact_quota)::bigint as base_quota,
        exact_quota - floor(exact_quota) as remainder
    from exact_quotas
), quotas as (
    select
        stratum,
        base_quota + case
            when row_number() over (order by remainder desc, stratum)
                <= ? - sum(base_quota) over () then 1
            else 0
        end as quota
    from floor_quotas
), ranked as (
    select
        c.prompt_id,
        c.messages,
        c.stratum,
        c.draw_key,
        row_number() over (partition by c.stratum order by c.draw_key, c.prompt_id) as rank_in_stratum
    from candidates as c
), drawn as (
    select r.prompt_id, r.messages, r.draw_key
    from ranked as r
    join quotas as q using (stratum)
    where r.rank_in_stratum <= q.quota
)
select prompt_id, messages from drawn order by draw_key, prompt_id
