-- One round's summary row. params: round_id
select * from v_round_summary where round_id = $round_id
