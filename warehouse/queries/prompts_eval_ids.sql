-- the held-out eval prompts: one row per active eval prompt
with eval_prompts as (
    select prompt_id from prompts where split = 'eval' and status = 'active'
)
select prompt_id from eval_prompts order by prompt_id
