-- A round that failed or was interrupted: a rerun resumes it.
-- params: status, cause, attempt seconds, round id
update rounds set status = ?, error = ?, wall_s = coalesce(wall_s, 0) + ? where round_id = ?
