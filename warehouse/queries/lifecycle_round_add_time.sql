-- Adds an attempt's wall time to the round's; returns the total. params: seconds, round id
update rounds set wall_s = coalesce(wall_s, 0) + ? where round_id = ? returning wall_s
