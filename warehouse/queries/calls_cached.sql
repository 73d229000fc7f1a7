-- successful calls among the wanted ids (one row per call); error rows are not a cache hit.
-- ? = list of call ids
with wanted as (
    select unnest(?::varchar[]) as call_id
),

stored as (
    select
        c.call_id,
        c.response_text,
        c.finish_reason,
        c.prompt_tokens,
        c.completion_tokens,
        c.latency_ms,
        c.cost_usd,
        c.n_attempts
    from llm_calls as c
    join wanted as w on w.call_id = c.call_id
    where c.error is null
)

select * from stored
