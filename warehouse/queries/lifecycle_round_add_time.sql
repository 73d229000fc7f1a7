-- Adds an attempt's wall time to the round's (no RETURNING: DuckLake has none for updates,
-- lifecycle_round_wall reads the total). params: seconds, round id
update rounds set wall_s = coalesce(wall_s, 0) + ? where round_id = ?
