-- schema version 11: conversations with a simulated user (evaluation.mode conversations or
-- both). A persona opens with a held-out prompt and talks with champion and candidate; every
-- message is stored with the call that produced it, so a rerun pays for nothing twice. The
-- two conversations of a persona are judged as a battle of purpose `eval_conversation`
-- (battles and judgments as for every battle; prompt_id is the opening prompt, response ids
-- the models' first answers, which are their single-turn eval answers).

-- one row per persona (the same kind, opening, follow-up and seed give the same persona in
-- every round that draws it)
create table if not exists sim_personas (
    persona_id          varchar not null,
    kind                varchar not null,       -- plain | follow_up | pushback | correction
    prompt_id           varchar not null,       -- the held-out prompt it opens with
    follow_up_prompt_id varchar,                -- kind follow_up: the prompt it asks next
    seed                integer not null,       -- sent with each of its simulator requests
    created_at          timestamp not null
);

-- one row per (round, persona, model): one finished simulated conversation
create table if not exists sim_conversations (
    conversation_id     varchar not null,       -- hash of (round, persona, model)
    round_id            integer not null,
    persona_id          varchar not null,
    persona_kind        varchar not null,
    prompt_id           varchar not null,
    model_id            varchar not null,
    n_user_turns        integer not null,       -- the opening included
    n_pushbacks         integer not null,       -- user turns with move pushback
    ended_by            varchar not null,       -- done | gave_up | max_turns | unparsed
    simulator           varchar not null,       -- the simulator endpoint's name
    simulator_prompt_version varchar not null,
    handled_right       boolean,                -- ground truth where the tasks are checkable
                                                -- (the sandbox): the last answer to the latest
                                                -- task is right; never shown to simulator or judge
    created_at          timestamp not null
);

-- one row per message of a simulated conversation, in order
create table if not exists sim_turns (
    conversation_id     varchar not null,
    turn_index          integer not null,       -- 0: the opening user turn
    role                varchar not null,       -- user | assistant
    text                varchar not null,       -- an unparsed simulator reply: its raw text
    move                varchar,                -- user turns after the opening: continue |
                                                -- pushback | done | gave_up; null: unparsed
    parse_error         varchar,                -- why a simulator reply was not read
    call_id             varchar,                -- the call that produced it (later turns)
    response_id         varchar,                -- the first answer: its single-turn response
    created_at          timestamp not null
);
