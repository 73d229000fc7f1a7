-- The prompts the champion samples for the online-dpo pairs: the active pool prompts of the
-- round's slice, one row per prompt, in prompt order. params: slice_id
with slice_prompts as (
    select prompt_id, messages
    from prompts
    where slice_id = $slice_id and split = 'pool' and status = 'active'
)
select prompt_id, messages from slice_prompts order by prompt_id
