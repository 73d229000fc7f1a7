-- Why the round kept or moved the champion. params: round_id
select decision_reason from rounds where round_id = $round_id
