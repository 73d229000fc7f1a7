-- the prompts of slice D_i, in their seeded draw order; parameters: seed, slice_id
with slice as (
    select prompt_id, status, md5(? || ':' || prompt_id) as draw_key
    from prompts
    where split = 'pool' and slice_id = ?
)
select prompt_id, status from slice order by draw_key, prompt_id
