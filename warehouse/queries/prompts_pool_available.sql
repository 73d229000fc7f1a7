-- how many active pool prompts no slice has drawn yet (what an eval draw or a slice can use)
with available as (
    select prompt_id
    from prompts
    where split = 'pool' and status = 'active' and slice_id is null
)
select count(*) as n_available from available
