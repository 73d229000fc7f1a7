-- A started or resumed round runs again, its last error cleared. params: round id
update rounds set status = 'running', error = null where round_id = ?
