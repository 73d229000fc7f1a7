-- the training slice of each prompt in ? (a list of prompt ids); null: no slice has drawn it
with wanted as (
    select unnest(?::varchar[]) as prompt_id
), found as (
    select p.prompt_id, p.slice_id
    from prompts as p
    join wanted as w using (prompt_id)
)
select * from found
