-- Every round's summary row (the terminal table and the round-metrics source).
select * from v_round_summary
