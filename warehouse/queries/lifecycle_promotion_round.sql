-- The round's decision. params: promoted, champion after, reason, round id
update rounds set promoted = ?, champion_after = ?, decision_reason = ? where round_id = ?
