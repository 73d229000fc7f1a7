-- The round's wall time over all its attempts. params: round id
select wall_s from rounds where round_id = ?
