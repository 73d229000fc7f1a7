-- The A/B outcome of each held-out prompt for one round's candidate vs champion, from the
-- candidate's side, with each side's answer length in characters.
-- params: round_id, candidate, champion
with eval_battles as (
    select b.prompt_id, b.outcome, b.response_a_id, b.response_b_id
    from battles as b
    where b.round_id = $round_id
      and b.purpose = 'eval'
      and b.model_a = $candidate
      and b.model_b = $champion
), with_lengths as (
    select
        e.prompt_id,
        e.outcome,
        length(a.response_text) as len_candidate,
        length(b.response_text) as len_champion
    from eval_battles as e
    join responses as a on a.response_id = e.response_a_id
    join responses as b on b.response_id = e.response_b_id
)
select * from with_lengths order by prompt_id
