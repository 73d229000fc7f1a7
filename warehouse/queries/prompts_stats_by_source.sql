-- one row per source: records read, exact duplicates among them, and what became of the
-- prompts it brought first
with occurrences as (
    select
        source,
        row_number() over (
            partition by prompt_id order by added_at, file_sha256, line_no
        ) = 1 as is_first
    from prompt_occurrences
), records as (
    select
        source,
        count(*) as n_records,
        count(*) filter (where not is_first) as n_exact_duplicates
    from occurrences
    group by source
), stored as (
    select
        source,
        count(*) as n_unique,
        count(*) filter (where split = 'pool' and status = 'active') as n_pool_active,
        count(*) filter (where split = 'eval' and status = 'active') as n_eval,
        count(*) filter (where status = 'near_duplicate') as n_near_duplicates,
        count(*) filter (where status = 'contaminated') as n_contaminated
    from prompts
    group by source
), by_source as (
    select
        coalesce(r.source, s.source) as source,
        coalesce(r.n_records, 0) as n_records,
        coalesce(r.n_exact_duplicates, 0) as n_exact_duplicates,
        coalesce(s.n_unique, 0) as n_unique,
        coalesce(s.n_near_duplicates, 0) as n_near_duplicates,
        coalesce(s.n_contaminated, 0) as n_contaminated,
        coalesce(s.n_eval, 0) as n_eval,
        coalesce(s.n_pool_active, 0) as n_pool_active
    from records as r
    full join stored as s using (source)
)
select * from by_source order by source
