-- the next slice: slice_size active pool prompts no slice has drawn, in seeded order
-- parameters: seed, slice_size
with available as (
    select prompt_id, md5(? || ':' || prompt_id) as draw_key
    from prompts
    where split = 'pool' and status = 'active' and slice_id is null
), drawn as (
    select * from available order by draw_key, prompt_id limit ?
)
select prompt_id from drawn order by draw_key, prompt_id
