-- schema version 13: unpaired examples for KTO. A judged battle labels its winner's answer
-- desirable and its loser's undesirable, also where the score gap is too small for a
-- preference pair; user feedback (source `feedback`) is unpaired by nature and will add rows
-- of its own source.

-- one row per (source, round, prompt, answer) labelled desirable or undesirable, with the
-- battle whose verdict gave the label (its judgments hold the games; null for other sources)
create table if not exists kto_examples (
    example_id      varchar not null,
    source          varchar not null,           -- battle (a judged battle's winner or loser)
    round_id        integer not null,
    prompt_id       varchar not null,
    response_id     varchar not null,
    label           boolean not null,           -- true: desirable, false: undesirable
    source_model    varchar not null,           -- who wrote the answer
    battle_id       varchar,                    -- source battle: the battle that labelled it
    n_battles       integer not null,           -- decisive battles that judged this answer
    score_gap       double,                     -- the labelling battle's gap (null: labels)
    label_strength  double,                     -- the labelling battle's strength (labels)
    rule_min_gap    double not null,            -- the score gap K the rule asked for
    created_at      timestamp not null
);
