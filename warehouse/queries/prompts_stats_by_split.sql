-- one row per (split, slice, status): where every stored prompt stands
with by_split as (
    select split, slice_id, status, count(*) as n_prompts
    from prompts
    group by all
)
select * from by_split order by split, slice_id nulls first, status
