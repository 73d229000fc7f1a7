-- the (answer, user's next turn) pairs of the logged conversations that classifier version $1
-- has not read: one row per logged conversation and assistant turn directly followed by a
-- user turn, without an implicit feedback row of that version nor a feedback_reads row (read
-- without a label), with the conversation's turns up to and including that user turn (JSON,
-- in order)
with answers as (
    select a.conversation_id, a.turn_index
    from log_turns as a
    join log_turns as u
        on u.conversation_id = a.conversation_id and u.turn_index = a.turn_index + 1
    where a.role = 'assistant' and u.role = 'user'
), pending as (
    select a.conversation_id, a.turn_index
    from answers as a
    where not exists (
        select 1
        from feedback as f
        where f.conversation_id = a.conversation_id
          and f.turn_index = a.turn_index
          and f.source = 'implicit'
          and f.classifier_version = $1
    ) and not exists (
        select 1
        from feedback_reads as r
        where r.conversation_id = a.conversation_id
          and r.turn_index = a.turn_index
          and r.classifier_version = $1
    )
), with_turns as (
    select
        p.conversation_id,
        p.turn_index,
        to_json(list({'role': t.role, 'content': t.content} order by t.turn_index)) as turns
    from pending as p
    join log_turns as t
        on t.conversation_id = p.conversation_id and t.turn_index <= p.turn_index + 1
    group by p.conversation_id, p.turn_index
)
select * from with_turns order by conversation_id, turn_index
