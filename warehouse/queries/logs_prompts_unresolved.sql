-- after the pool's ingest of the logged prompts: a conversation whose opening prompt the pool
-- refused (bad roles, ...) keeps no prompt id
update log_conversations as c
set prompt_id = null
where c.prompt_id is not null
  and not exists (select 1 from prompts as p where p.prompt_id = c.prompt_id)
