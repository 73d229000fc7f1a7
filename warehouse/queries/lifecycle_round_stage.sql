-- The stage a round trains. params: round id
select stage from rounds where round_id = ?
