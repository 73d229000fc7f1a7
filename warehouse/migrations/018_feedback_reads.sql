-- schema version 18: the (answer, user's next turn) pairs the implicit-feedback classifier read
-- without storing a label. A pair with a label has its `feedback` row; one whose reply said no
-- feedback, could not be read, or quoted words not in the user's turn leaves a row here, so the
-- next run does not plan it again (its reply is the cached call's: asking again would read the
-- same). A new classifier_prompt_version reads every pair again.

-- one row per (logged conversation, assistant turn, classifier version) read without a label
create table if not exists feedback_reads (
    conversation_id     varchar not null,
    turn_index          integer not null,   -- the assistant turn (log_turns.turn_index)
    classifier_version  varchar not null,
    outcome             varchar not null,   -- none | unparsed | quote_not_found
    call_id             varchar not null,   -- the classifier's llm_calls row (its raw reply)
    created_at          timestamp not null
);
