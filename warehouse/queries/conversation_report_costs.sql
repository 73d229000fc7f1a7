-- What each part of one round's conversation A/B cost. params: round_id
select * from v_conversation_costs where round_id = $round_id order by part
