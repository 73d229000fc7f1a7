-- The conversation A/B outcome of each persona for one round's candidate vs champion, from the
-- candidate's side, with the characters each side's assistant turns hold (one row per battle).
-- params: round_id, candidate, champion
with conversation_battles as (
    select b.prompt_id, b.outcome
    from battles as b
    where b.round_id = $round_id
      and b.purpose = 'eval_conversation'
      and b.model_a = $candidate
      and b.model_b = $champion
), assistant_chars as (
    select c.prompt_id, c.model_id, sum(length(t.text)) as n_chars
    from sim_conversations as c
    join sim_turns as t on t.conversation_id = c.conversation_id
    where c.round_id = $round_id and t.role = 'assistant'
    group by c.prompt_id, c.model_id
), with_lengths as (
    select
        e.prompt_id,
        e.outcome,
        a.n_chars as len_candidate,
        b.n_chars as len_champion
    from conversation_battles as e
    join assistant_chars as a on a.prompt_id = e.prompt_id and a.model_id = $candidate
    join assistant_chars as b on b.prompt_id = e.prompt_id and b.model_id = $champion
)
select * from with_lengths order by prompt_id
