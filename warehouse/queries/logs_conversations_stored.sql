-- which conversation ids of a batch (registered as _batch_conversation_ids) are stored already
with batch as (
    select conversation_id from _batch_conversation_ids
), stored as (
    select b.conversation_id
    from batch as b
    join log_conversations as c on c.conversation_id = b.conversation_id
)
select * from stored
