-- The round's A/B evaluations. params: round_id
select * from evaluations where round_id = $round_id
