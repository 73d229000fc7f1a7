-- The champion's stored samples for the online-dpo pairs: one row per (prompt, sample) of the
-- given prompts with sample_idx 1..n_samples (sample 0, the round's own answer, left out).
-- params: model_id, prompt_ids, n_samples
with wanted as (
    select unnest($prompt_ids::varchar[]) as prompt_id
), samples as (
    select r.prompt_id, r.sample_idx, r.response_id, r.response_text
    from responses as r
    join wanted using (prompt_id)
    where r.model_id = $model_id and r.sample_idx between 1 and $n_samples
)
select * from samples order by prompt_id, sample_idx
