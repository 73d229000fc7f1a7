-- Analysis views, recreated on every migration. An analyst starts here.

-- one row per round
create or replace view v_round_summary as
with train_battles as (
    select
        round_id,
        count(*) as n_battles,
        count(*) filter (where outcome in ('win', 'loss')) as n_decisive,
        -- decided, but neither a score gap nor a label strength: its games lost their scores
        -- (mining cannot rank it)
        count(*) filter (
            where outcome in ('win', 'loss') and score_gap is null and label_strength is null
        ) as n_decisive_without_gap
    from battles
    where purpose = 'train'
    group by round_id
), judge_cuts as (
    -- train battles whose conversation lost its oldest turns to the judge's context budget
    select j.round_id, count(distinct j.battle_id) as n_judge_prompts_cut
    from judgments as j
    join battles as b using (battle_id)
    where b.purpose = 'train' and j.context_turns_cut > 0
    group by j.round_id
), sft as (
    select round_id, count(*) as n_sft from sft_examples group by round_id
), dpo as (
    select round_id, count(*) as n_dpo from preference_pairs where kind = 'dpo' group by round_id
), rm as (
    select round_id, count(*) as n_rm from preference_pairs where kind = 'rm' group by round_id
), latest_evaluation as (
    select * from evaluations
    qualify row_number() over (partition by round_id order by created_at desc) = 1
), round_summary as (
    select
        r.round_id,
        r.stage,
        r.champion_before,
        r.champion_after,
        r.promoted,
        b.n_battles,
        b.n_decisive,
        b.n_decisive_without_gap,
        coalesce(c.n_judge_prompts_cut, 0) as n_judge_prompts_cut,
        sft.n_sft,
        dpo.n_dpo,
        rm.n_rm,
        e.win_rate,
        e.win_rate_ci_low,
        e.win_rate_ci_high,
        case when r.promoted then e.sandbox_accuracy_candidate
             else e.sandbox_accuracy_champion end as sandbox_accuracy,
        r.wall_s,
        r.status,
        r.error
    from rounds as r
    left join train_battles as b using (round_id)
    left join judge_cuts as c using (round_id)
    left join sft using (round_id)
    left join dpo using (round_id)
    left join rm using (round_id)
    left join latest_evaluation as e using (round_id)
)
select * from round_summary order by round_id;

-- one row per mined SFT example, in TRL's conversational `messages` form
create or replace view v_sft_data as
with examples as (
    select
        s.round_id,
        s.example_id,
        s.prompt_id,
        p.category,
        list_append(
            from_json(p.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]'),
            {'role': 'assistant', 'content': r.response_text}
        ) as messages,
        r.response_text as target_text,
        s.source_model,
        s.battle_id,
        s.score_gap,
        s.rule_kind,
        s.rule_min_gap
    from sft_examples as s
    join prompts as p using (prompt_id)
    join responses as r on r.response_id = s.response_id
)
select * from examples order by round_id, example_id;

-- one row per mined preference pair (DPO or reward model), in TRL's conversational
-- prompt/chosen/rejected form, with its battle and rule
create or replace view v_preference_pairs as
with pairs as (
    select
        d.kind,
        d.round_id,
        d.pair_id,
        d.prompt_id,
        p.category,
        from_json(p.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]') as prompt,
        [{'role': 'assistant', 'content': c.response_text}] as chosen,
        [{'role': 'assistant', 'content': j.response_text}] as rejected,
        d.chosen_model,
        d.rejected_model,
        d.battle_id,
        d.score_gap,
        d.rule_kind,
        d.rule_min_gap
    from preference_pairs as d
    join prompts as p using (prompt_id)
    join responses as c on c.response_id = d.chosen_response_id
    join responses as j on j.response_id = d.rejected_response_id
)
select * from pairs order by round_id, pair_id;

-- one row per mined DPO pair, in TRL's conversational prompt/chosen/rejected form
create or replace view v_dpo_pairs as
select * exclude (kind) from v_preference_pairs where kind = 'dpo' order by round_id, pair_id;

-- one row per mined reward-model pair, in TRL's conversational prompt/chosen/rejected form
create or replace view v_rm_pairs as
select * exclude (kind) from v_preference_pairs where kind = 'rm' order by round_id, pair_id;

-- one row per model version, with the chain of parents back to the round-0 student
create or replace view v_model_lineage as
with recursive ancestry(version_id, ancestor_id, path, depth) as (
    select version_id, parent_id, version_id, 0 from model_versions
    union all
    select a.version_id, m.parent_id, m.version_id || ' <- ' || a.path, a.depth + 1
    from ancestry as a
    join model_versions as m on m.version_id = a.ancestor_id
), lineage as (
    select version_id, path as lineage, depth as generation
    from ancestry
    where ancestor_id is null
), versions as (
    select
        m.version_id,
        m.parent_id,
        m.round_id,
        m.stage,
        m.status,
        l.generation,
        l.lineage,
        t.n_examples,
        t.first_loss,
        t.last_loss,
        e.win_rate as win_rate_vs_parent,
        e.decision,
        m.checkpoint_path,
        m.created_at
    from model_versions as m
    left join lineage as l using (version_id)
    left join training_runs as t on t.run_id = m.training_run_id
    left join evaluations as e on e.candidate = m.version_id
)
select * from versions order by created_at, version_id;
