-- A round's last act, after its report is published. params: finished at, round id
update rounds set status = 'done', error = null, finished_at = ? where round_id = ?
