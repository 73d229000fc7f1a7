-- flywheel warehouse, schema version 1. Every table states its grain.
-- Keys are natural (hashes of what identifies a row) so that writes are idempotent:
-- rows are added with `insert ... select ... where not exists`, which also runs on DuckLake.

-- one row per round
create table if not exists rounds (
    round_id        integer not null,
    stage           varchar not null,           -- sft | dpo | rm+rl
    slice_id        integer,                    -- prompt slice D_i battled this round
    status          varchar not null,           -- running | done | failed
    champion_before varchar,
    champion_after  varchar,
    candidate       varchar,
    promoted        boolean,
    decision_reason varchar,
    config_hash     varchar,
    error           varchar,
    started_at      timestamp,
    finished_at     timestamp,
    wall_s          double
);

-- one row per unique prompt (id = sha256 of the normalised messages)
create table if not exists prompts (
    prompt_id       varchar not null,
    messages        json not null,              -- chat messages, the last turn from the user
    prompt_text     varchar not null,           -- the last user turn, normalised
    source          varchar not null,
    category        varchar,                    -- skill family or user category
    split           varchar not null,           -- pool | eval
    slice_id        integer,                    -- D_i for pool prompts drawn into a slice
    status          varchar not null,           -- active | near_duplicate | contaminated
    duplicate_of    varchar,                    -- the kept prompt a near-duplicate was absorbed by
    contaminated_by varchar,                    -- the eval prompt a contaminated prompt matched
    n_chars         integer not null,
    added_at        timestamp not null
);

-- one row per record seen in an ingested file (every occurrence, also exact duplicates)
create table if not exists prompt_occurrences (
    file_sha256     varchar not null,
    line_no         integer not null,
    prompt_id       varchar not null,
    source          varchar not null,
    file_path       varchar not null,
    added_at        timestamp not null
);

-- one row per model version (the round-0 student, every trained candidate)
create table if not exists model_versions (
    version_id      varchar not null,
    parent_id       varchar,
    round_id        integer,
    stage           varchar,                    -- base | sft | dpo | rm+rl | rm (reward model)
    checkpoint_path varchar not null,
    status          varchar not null,           -- champion | candidate | rejected | retired | reward_model
    training_run_id varchar,
    created_at      timestamp not null
);

-- one row per distinct request (id = hash of endpoint, model, messages, sampling params)
create table if not exists llm_calls (
    call_id           varchar not null,
    endpoint          varchar not null,
    model             varchar not null,
    request_json      json not null,            -- messages and sampling params, never the key
    response_text     varchar,
    finish_reason     varchar,
    prompt_tokens     integer,
    completion_tokens integer,
    latency_ms        double,
    cost_usd          double,
    n_attempts        integer,
    error             varchar,                  -- null on success; the cause after the last retry
    round_id          integer,
    created_at        timestamp not null
);

-- one row per (prompt, model version or reference, sample)
create table if not exists responses (
    response_id     varchar not null,
    prompt_id       varchar not null,
    model_id        varchar not null,           -- a version_id, or ref:<name> for a reference
    sample_idx      integer not null,
    round_id        integer not null,
    response_text   varchar not null,
    n_tokens        integer,
    finish_reason   varchar,
    call_id         varchar,                    -- null for local generation
    created_at      timestamp not null
);

-- one row per battle (round, prompt, model A, model B, purpose); outcome from model A's side
create table if not exists battles (
    battle_id       varchar not null,
    round_id        integer not null,
    prompt_id       varchar not null,
    purpose         varchar not null,           -- train | eval
    model_a         varchar not null,
    model_b         varchar not null,
    response_a_id   varchar not null,
    response_b_id   varchar not null,
    judge           varchar not null,
    score_a         double,                     -- mean over both games
    score_b         double,
    score_gap       double,                     -- abs(score_a - score_b)
    outcome         varchar not null,           -- win | loss | tie | inconsistent | unparsed | error
    created_at      timestamp not null
);

-- one row per judged game (battle, order, judge, judge prompt version)
create table if not exists judgments (
    judgment_id     varchar not null,
    battle_id       varchar not null,
    round_id        integer not null,
    game_order      varchar not null,           -- AB (model A shown first) | BA
    judge           varchar not null,
    prompt_version  varchar not null,
    raw_text        varchar,
    score_first     double,                     -- score of the answer shown first
    score_second    double,
    verdict         varchar,                    -- first | second | tie | null when unparsed
    parse_ok        boolean not null,
    call_id         varchar,
    error           varchar,
    created_at      timestamp not null
);
