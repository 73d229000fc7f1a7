-- the messages of the prompts whose ids are registered as _wanted_ids
with wanted as (
    select distinct prompt_id from _wanted_ids
), found as (
    select p.prompt_id, p.messages
    from prompts as p
    join wanted as w using (prompt_id)
)
select * from found
