-- the simulated conversations stored for a round (one row per conversation)
-- params: round_id
select conversation_id
from sim_conversations
where round_id = $round_id
