-- the turns of a round's simulated conversations of the given models, as the judge sees them
-- (one row per message; the user's closing or unread reply left out), in order
-- params: round_id, models (list of model ids)
select
    c.persona_id,
    c.persona_kind,
    c.prompt_id,
    c.model_id,
    t.turn_index,
    t.role,
    t.text,
    t.response_id
from sim_conversations as c
join sim_turns as t on t.conversation_id = c.conversation_id
where c.round_id = $round_id
  and list_contains($models::varchar[], c.model_id)
  and (t.role = 'assistant' or (t.parse_error is null and coalesce(t.move, '') not in ('done', 'gave_up')))
order by c.persona_id, c.model_id, t.turn_index
