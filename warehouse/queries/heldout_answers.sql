-- One model's answers to the held-out eval prompts, with the prompt text, for checker accuracy.
-- params: model_id
with answers as (
    select p.prompt_id, p.prompt_text, r.response_text
    from responses as r
    join prompts as p using (prompt_id)
    where r.model_id = $model_id and p.split = 'eval' and r.sample_idx = 0
)
select * from answers order by prompt_id
