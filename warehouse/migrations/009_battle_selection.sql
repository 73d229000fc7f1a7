-- schema version 9: the judge budget (judge.selection): which train battles were judged.

-- one row per (champion, reference) train battle of a round under a judge budget, judged or
-- not (judge.selection.strategy uncertain or random): whether it was selected, how, and the
-- reward-model ensemble's uncertainty about it (the entropy in bits of its mean P(reference
-- wins); null when chosen at random). A resumed round reuses the stored choice.
create table if not exists battle_selection (
    round_id         integer not null,
    prompt_id        varchar not null,
    model_a          varchar not null,          -- the champion
    model_b          varchar not null,          -- the reference
    strategy         varchar not null,          -- uncertain | random (as chosen this round)
    uncertainty      double,
    p_reference_wins double,                    -- the ensemble's mean probability
    selected         boolean not null,
    selector         varchar not null,          -- how the round chose, in words
    created_at       timestamp not null
);
