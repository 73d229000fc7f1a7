-- schema version 2: what the battles teach and how it is judged: mined examples,
-- training jobs, A/B evaluations and ratings.

-- one row per mined SFT example
create table if not exists sft_examples (
    example_id      varchar not null,
    round_id        integer not null,
    prompt_id       varchar not null,
    battle_id       varchar not null,
    response_id     varchar not null,           -- the winning reference answer used as target
    source_model    varchar not null,
    rule_kind       varchar not null,           -- sft
    rule_min_gap    double not null,
    score_gap       double not null,
    created_at      timestamp not null
);

-- one row per mined DPO pair
create table if not exists dpo_pairs (
    pair_id         varchar not null,
    round_id        integer not null,
    prompt_id       varchar not null,
    battle_id       varchar not null,
    chosen_response_id   varchar not null,
    rejected_response_id varchar not null,
    chosen_model    varchar not null,
    rejected_model  varchar not null,
    rule_kind       varchar not null,           -- dpo
    rule_min_gap    double not null,
    score_gap       double not null,
    created_at      timestamp not null
);

-- one row per mined reward-model pair
create table if not exists rm_pairs (
    pair_id         varchar not null,
    round_id        integer not null,
    prompt_id       varchar not null,
    battle_id       varchar not null,
    chosen_response_id   varchar not null,
    rejected_response_id varchar not null,
    chosen_model    varchar not null,
    rejected_model  varchar not null,
    rule_kind       varchar not null,           -- rm
    rule_min_gap    double not null,
    score_gap       double not null,
    created_at      timestamp not null
);

-- one row per training job (done, skipped or failed)
create table if not exists training_runs (
    run_id          varchar not null,
    round_id        integer not null,
    stage           varchar not null,
    base_version    varchar not null,
    output_version  varchar,
    status          varchar not null,           -- done | skipped | failed
    reason          varchar,
    hyperparams     json,
    n_examples      integer not null,
    first_loss      double,
    last_loss       double,
    wall_s          double,
    created_at      timestamp not null
);

-- one row per A/B comparison (candidate vs champion on the held-out eval prompts)
create table if not exists evaluations (
    evaluation_id   varchar not null,
    round_id        integer not null,
    candidate       varchar not null,
    champion        varchar not null,
    n_prompts       integer not null,
    wins            integer not null,
    ties            integer not null,
    losses          integer not null,
    n_excluded      integer not null,
    win_rate        double,
    win_rate_ci_low double,
    win_rate_ci_high double,
    lc_win_rate     double,
    mean_len_candidate double,
    mean_len_champion  double,
    position_consistency double,
    parse_failure_rate   double,
    first_position_win_share double,
    sandbox_accuracy_candidate double,
    sandbox_accuracy_champion  double,
    decision        varchar not null,           -- promote | keep
    reason          varchar not null,
    created_at      timestamp not null
);

-- one row per (round, model): Bradley-Terry rating with its interval
create table if not exists ratings (
    round_id        integer not null,
    model_id        varchar not null,
    rating          double not null,
    ci_low          double,
    ci_high         double,
    n_battles       integer not null,
    created_at      timestamp not null
);
