-- The active pool prompts of a slice, as chat messages (the RL stage's prompts). params: slice id
with slice_prompts as (
    select prompt_id, messages
    from prompts
    where slice_id = ? and split = 'pool' and status = 'active'
)
select messages from slice_prompts order by prompt_id
