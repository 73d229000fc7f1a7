-- the (answer, user's next turn) pairs of the logged conversations that classifier version $1
-- has not read: one row (conversation_id, the assistant turn's turn_index) per logged
-- conversation and assistant turn directly followed by a user turn, without an implicit
-- feedback row of that version nor a feedback_reads row (read without a label); their turns
-- are read a batch at a time (classify_pair_turns.sql)
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
)
select conversation_id, turn_index from pending order by conversation_id, turn_index
