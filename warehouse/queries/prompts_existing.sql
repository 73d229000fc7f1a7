-- the stored prompts among a batch's ids (registered as _batch_ids): one row per stored prompt
with batch_ids as (
    select distinct prompt_id from _batch_ids
), existing as (
    select p.prompt_id, p.split, p.slice_id, p.status
    from prompts as p
    join batch_ids as b using (prompt_id)
)
select * from existing
