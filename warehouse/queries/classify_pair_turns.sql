-- every turn of the logged conversations $1 (a list of conversation ids), in order: a batch of
-- classifier pairs takes its turns from these (tasks/classify_feedback.py)
select conversation_id, turn_index, role, content
from log_turns
where conversation_id in (select unnest($1::varchar[]))
order by conversation_id, turn_index
