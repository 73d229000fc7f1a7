-- one row per category: eval prompts, pool prompts drawn into slices or still unused, and
-- prompts removed as near-duplicates or contaminated
with by_category as (
    select
        coalesce(category, '(none)') as category,
        count(*) filter (where split = 'eval' and status = 'active') as n_eval,
        count(*) filter (
            where split = 'pool' and status = 'active' and slice_id is not null
        ) as n_in_slices,
        count(*) filter (
            where split = 'pool' and status = 'active' and slice_id is null
        ) as n_pool_unused,
        count(*) filter (where status = 'near_duplicate') as n_near_duplicates,
        count(*) filter (where status = 'contaminated') as n_contaminated
    from prompts
    group by all
)
select * from by_category order by category
