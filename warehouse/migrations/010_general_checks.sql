-- schema version 10: keeping what it knew. A model version measured on the held-out general
-- set (ordinary instructions with good answers, pool/data/general_set.jsonl): the mean NLL of
-- the good answers and the share of its greedy replies that collapse into the answer format.

-- one row per model version checked in a round (the champion and the candidate). A version is
-- measured once per version of the set: a later round that checks it again (the champion, or a
-- resumed round) copies its stored figures, and measured_at says when they were taken.
create table if not exists general_checks (
    round_id        integer not null,
    version_id      varchar not null,
    n_items         integer not null,
    mean_nll        double,                     -- per answer token; null: nothing scored
    collapse_share  double,                     -- share of replies; null: no reply
    set_sha256      varchar not null,           -- sha256 of the general set's file
    wall_s          double,                     -- seconds the measurement took
    measured_at     timestamp not null
);
