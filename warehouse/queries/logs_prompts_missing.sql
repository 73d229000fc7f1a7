-- the opening prompt (the turns before the first answer) of each logged conversation whose
-- prompt is not in the pool yet: one row per missing prompt id, from its first conversation
with missing as (
    select c.prompt_id, min(c.conversation_id) as conversation_id
    from log_conversations as c
    where c.prompt_id is not null
      and not exists (select 1 from prompts as p where p.prompt_id = c.prompt_id)
    group by c.prompt_id
), first_answer as (
    select t.conversation_id, min(t.turn_index) as turn_index
    from log_turns as t
    join missing as m using (conversation_id)
    where t.role = 'assistant'
    group by t.conversation_id
), opening as (
    select
        m.prompt_id,
        list({'role': t.role, 'content': t.content} order by t.turn_index) as messages
    from missing as m
    join first_answer as a using (conversation_id)
    join log_turns as t on t.conversation_id = m.conversation_id and t.turn_index < a.turn_index
    group by m.prompt_id
)
select * from opening order by prompt_id
