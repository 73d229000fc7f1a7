-- schema version 12: production logs and their feedback (issue 32). Conversations read from
-- users' logs (OpenAI chat-completion logs, LangSmith, Langfuse, Chatbot Arena, messages with
-- per-turn feedback), their turns, and feedback on the answers: explicit (a thumb, score, vote,
-- comment or correction in the log) and implicit (a classifier reading the user's next turn,
-- written later) side by side. Text is stored redacted, user ids only as a salted hash
-- (pool/logs_privacy.py). Simulated conversations of the sandbox are other tables (`sim_*`).

-- one row per batch of records read from a log file (a file is read in batches of
-- prompts.batch_size records; a file that grew adds rows for its new part). `file_sha256` is the
-- sha256 of the file's bytes from its start to the end of the batch's last record (`bytes_read`),
-- so the same content read again adds nothing, a file that grew is read on from the longest
-- recorded `bytes_read` whose prefix is unchanged, and a run stopped mid-file resumes there.
create table if not exists log_files (
    file_sha256       varchar not null,
    path              varchar not null,     -- absolute path it was read from
    source            varchar not null,     -- the name the logs were added under
    bytes_read        bigint not null,      -- end of the last complete record (a newline)
    lines_read        bigint not null,      -- lines up to bytes_read (the next line's number - 1)
    resumed_from      bigint not null,      -- byte offset this read started at (0: whole file)
    n_records         integer not null,     -- records read in this part
    n_conversations   integer not null,     -- conversations stored (an arena record holds two)
    n_feedback        integer not null,     -- explicit feedback rows stored
    n_malformed       integer not null,     -- records skipped, each named with its line
    n_redacted        integer not null,     -- redactions made (sum of `redactions`)
    redactions        varchar not null,     -- JSON: {"email": n, "phone": n, "credit_card": n, "secret": n}
    added_at          timestamp not null
);

-- one row per logged conversation (one model's side of a record: an arena record is two)
create table if not exists log_conversations (
    conversation_id   varchar not null,     -- sha256 of (format family, the log's own id)
    source            varchar not null,
    log_format        varchar not null,     -- openai-log | langsmith | langfuse | arena | messages
    external_id       varchar,              -- the log's id (response id, run id, trace id, ...)
    model             varchar,              -- the model (version) that answered, as logged
    user_hash         varchar,              -- sha256(salt:user id); null: no user id logged
    started_at        timestamp,            -- when it was logged (UTC); null: no time logged
    n_turns           integer not null,
    prompt_id         varchar,              -- the opening prompt in the pool; null: not a valid prompt
    file_sha256       varchar not null,     -- the log_files read it came from
    line_no           bigint not null,      -- its line in that file
    added_at          timestamp not null
);

-- one row per turn of a logged conversation, text redacted
create table if not exists log_turns (
    conversation_id   varchar not null,
    turn_index        integer not null,     -- position from 0
    role              varchar not null,     -- system | user | assistant | tool
    content           varchar not null
);

-- one row per feedback on one assistant turn: explicit (from the log) or implicit (read from
-- the user's next turn by the classifier). Explicit rows fill kind/label/score/value/comment/
-- correction; implicit rows fill category/quote/confidence/classifier_version/call_id.
create table if not exists feedback (
    feedback_id       varchar not null,     -- sha256 of (conversation, turn, source, key, origin)
    conversation_id   varchar not null,
    turn_index        integer not null,     -- the assistant turn it is about (log_turns.turn_index)
    source            varchar not null,     -- explicit | implicit
    kind              varchar not null,     -- thumb | score | vote | category | comment | correction | classified
    label             varchar,              -- positive | negative | neutral; null: cannot say
    category          varchar,              -- implicit: repeat | correction | complaint | clarification | positive
    score             double,               -- a numeric score as logged
    value             varchar,              -- the thumb, category or vote as logged
    comment           varchar,
    correction        varchar,              -- the corrected answer the user gave
    feedback_key      varchar,              -- its name in the log (LangSmith key, Langfuse name)
    quote             varchar,              -- implicit: the user's words the label rests on
    confidence        double,               -- implicit: the classifier's confidence
    classifier_version varchar,             -- implicit: the classifier prompt's version
    call_id           varchar,              -- implicit: the classifier's llm_calls row
    file_sha256       varchar,              -- explicit: the log_files read it came from
    line_no           bigint,
    created_at        timestamp not null
);
