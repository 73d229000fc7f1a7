-- Every round's id and status, in order.
select round_id, status from rounds order by round_id
