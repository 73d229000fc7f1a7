-- stored answers of the given models to the given prompts (one row per response);
-- ? = list of prompt ids, ? = list of model ids
with wanted_prompts as (
    select unnest(?::varchar[]) as prompt_id
),

wanted_models as (
    select unnest(?::varchar[]) as model_id
),

found as (
    select
        r.response_id,
        r.prompt_id,
        r.model_id,
        r.sample_idx,
        r.response_text
    from responses as r
    join wanted_prompts as p on p.prompt_id = r.prompt_id
    join wanted_models as m on m.model_id = r.model_id
)

select * from found
