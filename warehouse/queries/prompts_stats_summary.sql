-- the pool at a glance: one row of totals
with occurrences as (
    select count(*) as n_records, count(distinct prompt_id) as n_unique_prompts
    from prompt_occurrences
), prompt_counts as (
    select
        count(*) filter (where split = 'pool' and status = 'active') as n_pool_active,
        count(*) filter (
            where split = 'pool' and status = 'active' and slice_id is null
        ) as n_pool_unused,
        count(distinct slice_id) as n_slices,
        count(*) filter (where split = 'eval' and status = 'active') as n_eval,
        count(*) filter (where status = 'near_duplicate') as n_near_duplicates_removed,
        count(*) filter (where status = 'contaminated') as n_contaminated_removed
    from prompts
), summary as (
    select
        o.n_records,
        o.n_records - o.n_unique_prompts as n_exact_duplicates_removed,
        p.n_near_duplicates_removed,
        p.n_contaminated_removed,
        p.n_eval,
        p.n_pool_active,
        p.n_pool_unused,
        p.n_slices
    from occurrences as o
    cross join prompt_counts as p
)
select * from summary
