-- the prompts a step answers or judges (one row per prompt); ? = list of prompt ids
with wanted as (
    select unnest(?::varchar[]) as prompt_id
),

found as (
    select
        p.prompt_id,
        p.messages,
        p.prompt_text
    from prompts as p
    join wanted as w on w.prompt_id = p.prompt_id
)

select * from found
