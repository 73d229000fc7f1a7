-- schema version 4: DPO pairs and reward-model pairs were two identical tables; they become
-- one, whose `kind` says which stage the pair was mined for. Every stored row is kept (its
-- kind is the table it was in); v_dpo_pairs and v_rm_pairs keep their columns.

-- one row per mined preference pair (kind dpo or rm), with its battle and the rule that chose it
create table if not exists preference_pairs (
    pair_id         varchar not null,
    kind            varchar not null,           -- dpo | rm
    round_id        integer not null,
    prompt_id       varchar not null,
    battle_id       varchar not null,
    chosen_response_id   varchar not null,
    rejected_response_id varchar not null,
    chosen_model    varchar not null,
    rejected_model  varchar not null,
    rule_kind       varchar not null,           -- the rule: dpo | rm
    rule_min_gap    double not null,
    score_gap       double not null,
    created_at      timestamp not null
);

insert into preference_pairs
select pair_id, 'dpo' as kind, * exclude (pair_id) from dpo_pairs;

insert into preference_pairs
select pair_id, 'rm' as kind, * exclude (pair_id) from rm_pairs;

drop view if exists v_round_summary;
drop view if exists v_dpo_pairs;
drop view if exists v_rm_pairs;
drop table dpo_pairs;
drop table rm_pairs;
