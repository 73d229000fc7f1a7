-- active pool prompts that overlap an eval prompt (registered as _contaminated: prompt_id,
-- eval_prompt_id) leave the training pool, with the eval prompt they matched
update prompts
set status = 'contaminated', contaminated_by = c.eval_prompt_id
from _contaminated as c
where prompts.prompt_id = c.prompt_id
    and prompts.split = 'pool'
    and prompts.status = 'active'
