-- Calls, tokens and cost per endpoint in one round.
-- params: round_id
with calls as (
    select endpoint, model, prompt_tokens, completion_tokens, cost_usd, error
    from llm_calls
    where round_id = $round_id
), per_endpoint as (
    select
        endpoint,
        count(*) as n_calls,
        count(error) as n_errors,
        coalesce(sum(prompt_tokens), 0) as prompt_tokens,
        coalesce(sum(completion_tokens), 0) as completion_tokens,
        coalesce(sum(cost_usd), 0) as cost_usd
    from calls
    group by endpoint
)
select * from per_endpoint order by endpoint
