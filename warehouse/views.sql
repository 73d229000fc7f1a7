-- Analysis views, recreated on every migration. An analyst starts here.

-- one row per round and purpose: how far the judge can be trusted. Calibration where the truth
-- is known: on battles where the skill checker (the verifier judgment) says exactly one answer
-- is right, how often the judge's battle outcome agrees; next to position consistency, the
-- share of battles with both games parsed whose two games name the same winner (A, B or tie)
-- once the order is undone; with a judge panel, inter-judge agreement: the share of games
-- judged by two or more judges whose parsed verdicts all agree. For purpose eval_conversation
-- the truth is the sandbox's (sim_conversations.handled_right), and the simulator_* /
-- judge_feedback_* columns say how far the simulated user agrees with the truth and with real
-- users' feedback, and the judge with real users' preference (per persona kind:
-- v_conversation_calibration).
create or replace view v_judge_calibration as
with games as (
    select
        b.round_id,
        b.purpose,
        j.battle_id,
        max(case when j.game_order = 'AB' then
            case j.verdict when 'first' then 'a' when 'second' then 'b' else 'tie' end end) as ab,
        max(case when j.game_order = 'BA' then
            case j.verdict when 'first' then 'b' when 'second' then 'a' else 'tie' end end) as ba
    from judgments as j
    join battles as b on b.battle_id = j.battle_id and b.judge = j.judge
    where j.parse_ok
    group by b.round_id, b.purpose, j.battle_id
), consistency as (
    select
        round_id,
        purpose,
        count(*) filter (where ab is not null and ba is not null) as n_both_parsed,
        count(*) filter (where ab = ba) as n_position_consistent
    from games
    group by round_id, purpose
), checked as (
    select
        b.round_id,
        b.purpose,
        b.outcome,
        case v.verdict when 'first' then 'win' else 'loss' end as truth
    from battles as b
    join judgments as v on v.battle_id = b.battle_id and v.judge = 'verifier'
    where v.verdict in ('first', 'second')
    union all
    -- conversation battles: the sandbox's ground truth of the two conversations, where exactly
    -- one handled its persona's move right (warehouse/views/conversations.sql)
    select
        b.round_id,
        b.purpose,
        b.outcome,
        case when a.handled_right then 'win' else 'loss' end as truth
    from battles as b
    join v_sim_conversation_verdicts as a
        on a.round_id = b.round_id and a.prompt_id = b.prompt_id and a.model_id = b.model_a
    join v_sim_conversation_verdicts as c
        on c.round_id = b.round_id and c.prompt_id = b.prompt_id and c.model_id = b.model_b
    where b.purpose = 'eval_conversation' and a.handled_right <> c.handled_right
), calibration as (
    select
        round_id,
        purpose,
        count(*) as n_checker_decisive,
        count(*) filter (where outcome = truth) as n_judge_agrees,
        count(*) filter (where outcome in ('win', 'loss') and outcome <> truth) as n_judge_opposes
    from checked
    group by round_id, purpose
), panel_games as (
    select
        b.round_id,
        b.purpose,
        count(distinct j.verdict) = 1 as unanimous
    from judgments as j
    join battles as b on b.battle_id = j.battle_id
    where j.judge <> 'verifier' and j.parse_ok
    group by b.round_id, b.purpose, j.battle_id, j.game_order
    having count(distinct j.judge) >= 2
), panel as (
    select
        round_id,
        purpose,
        count(*) as n_panel_games,
        count(*) filter (where unanimous) as n_panel_unanimous
    from panel_games
    group by round_id, purpose
), simulation as (
    -- conversation battles: the simulated user against the sandbox's truth and against real
    -- users' feedback, the judge against real users' preference (v_conversation_calibration)
    select
        round_id,
        'eval_conversation' as purpose,
        sum(n_user_truth) as n_simulator_truth,
        sum(n_user_agree_truth) as n_simulator_agrees_truth,
        sum(n_user_feedback) as n_simulator_feedback,
        sum(n_user_agree_feedback) as n_simulator_agrees_feedback,
        sum(n_judge_feedback) as n_judge_feedback,
        sum(n_judge_agree_feedback) as n_judge_agrees_feedback
    from v_conversation_calibration
    group by round_id
), judge_calibration as (
    select
        round_id,
        purpose,
        coalesce(k.n_checker_decisive, 0) as n_checker_decisive,
        coalesce(k.n_judge_agrees, 0) as n_judge_agrees,
        coalesce(k.n_judge_opposes, 0) as n_judge_opposes,
        k.n_judge_agrees / nullif(k.n_checker_decisive, 0) as checker_agreement,
        coalesce(c.n_both_parsed, 0) as n_both_parsed,
        c.n_position_consistent / nullif(c.n_both_parsed, 0) as position_consistency,
        coalesce(p.n_panel_games, 0) as n_panel_games,
        p.n_panel_unanimous / nullif(p.n_panel_games, 0) as panel_agreement,
        coalesce(s.n_simulator_truth, 0)::bigint as n_simulator_truth,
        s.n_simulator_agrees_truth / nullif(s.n_simulator_truth, 0) as simulator_truth_agreement,
        coalesce(s.n_simulator_feedback, 0)::bigint as n_simulator_feedback,
        s.n_simulator_agrees_feedback / nullif(s.n_simulator_feedback, 0)
            as simulator_feedback_agreement,
        coalesce(s.n_judge_feedback, 0)::bigint as n_judge_feedback,
        s.n_judge_agrees_feedback / nullif(s.n_judge_feedback, 0) as judge_feedback_agreement
    from consistency as c
    full join calibration as k using (round_id, purpose)
    left join panel as p using (round_id, purpose)
    left join simulation as s using (round_id, purpose)
)
select * from judge_calibration order by round_id, purpose;

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
), selection as (
    -- under a judge budget (judge.selection): the round's battles left unjudged
    select round_id, count(*) filter (where not selected) as n_battles_unselected
    from battle_selection
    group by round_id
), judge_cuts as (
    -- train battles whose conversation lost its oldest turns to the judge's context budget
    select j.round_id, count(distinct j.battle_id) as n_judge_prompts_cut
    from judgments as j
    join battles as b using (battle_id)
    where b.purpose = 'train' and j.context_turns_cut > 0
    group by j.round_id
), train_calibration as (
    select round_id, checker_agreement, position_consistency
    from v_judge_calibration
    where purpose = 'train'
), sft as (
    select round_id, count(*) as n_sft from sft_examples group by round_id
), dpo as (
    select round_id, count(*) as n_dpo from preference_pairs where kind = 'dpo' group by round_id
), rm as (
    select round_id, count(*) as n_rm from preference_pairs where kind = 'rm' group by round_id
), reward_models as (
    -- the rm+rl stage's reward models (training.rm.ensemble_size) and, with pairs held out,
    -- the ensemble's pair accuracy on them; whether RL stopped early (on their disagreement
    -- or on a falling judged win rate) and why; the last judged win rate over the champion
    -- (training.rl.winrate_check_every) and the verifiable reward's weight
    select
        round_id,
        max((hyperparams->>'$.rm_ensemble_size')::integer) as rm_ensemble_size,
        max((hyperparams->>'$.rm_ensemble_heldout_accuracy')::double) as rm_heldout_accuracy,
        bool_or((hyperparams->>'$.rl_stopped_early')::boolean) as rl_stopped_early,
        max(hyperparams->>'$.rl_stop_reason') as rl_stop_reason,
        max((hyperparams->>'$.rl_winrate_last')::double) as rl_winrate_last,
        max((hyperparams->>'$.rl_verifiable_reward_weight')::double) as rl_verifiable_weight
    from training_runs
    where stage = 'rm+rl' and status = 'done'
    group by round_id
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
        coalesce(u.n_battles_unselected, 0) as n_battles_unselected,
        coalesce(c.n_judge_prompts_cut, 0) as n_judge_prompts_cut,
        k.checker_agreement as judge_checker_agreement,
        k.position_consistency as judge_position_consistency,
        sft.n_sft,
        dpo.n_dpo,
        rm.n_rm,
        m.rm_ensemble_size,
        m.rm_heldout_accuracy,
        m.rl_stopped_early,
        m.rl_stop_reason,
        m.rl_winrate_last,
        m.rl_verifiable_weight,
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
    left join selection as u using (round_id)
    left join judge_cuts as c using (round_id)
    left join train_calibration as k using (round_id)
    left join sft using (round_id)
    left join dpo using (round_id)
    left join rm using (round_id)
    left join reward_models as m using (round_id)
    left join latest_evaluation as e using (round_id)
)
select * from round_summary order by round_id;

-- one row per mined SFT example, in TRL's conversational `messages` form, beside where it came
-- from. `origin` is the data mix's (training.mix): battle (the winning reference's answer),
-- refine (a reference's correction of the champion's answer, target_source refine) or feedback
-- (a logged answer users liked, target_source feedback, or a user's corrected answer,
-- target_source correction; its prompt is the conversation before that answer, its lineage
-- conversation_id, turn_index and feedback_ids)
create or replace view v_sft_data as
with battle_examples as (
    select
        s.round_id,
        s.example_id,
        s.prompt_id,
        p.category,
        list_append(
            from_json(p.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]'),
            {'role': 'assistant', 'content': coalesce(c.response_text, r.response_text)}
        ) as messages,
        coalesce(c.response_text, r.response_text) as target_text,
        s.source_model,
        s.battle_id,
        s.score_gap,
        s.rule_kind,
        s.rule_min_gap,
        coalesce(s.target_source, 'winner') as target_source,
        s.target_call_id,
        case when s.target_source = 'refine' then 'refine' else 'battle' end as origin,
        null::varchar as conversation_id,
        null::integer as turn_index,
        null::varchar[] as feedback_ids
    from sft_examples as s
    join prompts as p using (prompt_id)
    join responses as r on r.response_id = s.response_id
    -- a refined target is the text of its refine call (training.mining.sft_rule refine)
    left join llm_calls as c on c.call_id = s.target_call_id
    where coalesce(s.origin, 'battle') = 'battle'
), feedback_contexts as (
    select
        s.example_id,
        list({'role': t.role, 'content': t.content} order by t.turn_index) as context
    from sft_examples as s
    join log_turns as t on t.conversation_id = s.conversation_id and t.turn_index < s.turn_index
    where s.origin = 'feedback'
    group by s.example_id
), feedback_examples as (
    select
        s.round_id,
        s.example_id,
        s.prompt_id,
        p.category,
        list_append(
            x.context,
            {'role': 'assistant', 'content': coalesce(f.correction, a.content)}
        ) as messages,
        coalesce(f.correction, a.content) as target_text,
        s.source_model,
        s.battle_id,
        s.score_gap,
        s.rule_kind,
        s.rule_min_gap,
        s.target_source,
        s.target_call_id,
        'feedback' as origin,
        s.conversation_id,
        s.turn_index,
        s.feedback_ids
    from sft_examples as s
    join prompts as p using (prompt_id)
    join feedback_contexts as x using (example_id)
    join log_turns as a on a.conversation_id = s.conversation_id and a.turn_index = s.turn_index
    -- a correction's target is the user's corrected answer (its feedback row comes first)
    left join feedback as f
        on s.target_source = 'correction' and f.feedback_id = s.feedback_ids[1]
    where s.origin = 'feedback'
), examples as (
    select * from battle_examples
    union all by name
    select * from feedback_examples
)
select * from examples order by round_id, example_id;

-- one row per mined preference pair (DPO or reward model), in TRL's conversational
-- prompt/chosen/rejected form, with its battle and rule, or (origin feedback) the two logged
-- answers to the same context that users liked and disliked (chosen_source feedback), or a
-- logged answer and the user's correction of it (chosen_source correction), and the feedback
-- behind each
create or replace view v_preference_pairs as
with battle_pairs as (
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
        d.rule_min_gap,
        'battle' as origin,
        null::varchar as chosen_conversation_id,
        null::integer as chosen_turn_index,
        null::varchar as rejected_conversation_id,
        null::integer as rejected_turn_index,
        null::varchar[] as chosen_feedback_ids,
        null::varchar[] as rejected_feedback_ids,
        null::varchar as chosen_source
    from preference_pairs as d
    join prompts as p using (prompt_id)
    join responses as c on c.response_id = d.chosen_response_id
    join responses as j on j.response_id = d.rejected_response_id
    where coalesce(d.origin, 'battle') = 'battle'
), feedback_contexts as (
    select
        d.pair_id,
        list({'role': t.role, 'content': t.content} order by t.turn_index) as context
    from preference_pairs as d
    join log_turns as t
        on t.conversation_id = d.chosen_conversation_id and t.turn_index < d.chosen_turn_index
    where d.origin = 'feedback'
    group by d.pair_id
), feedback_pairs as (
    select
        d.kind,
        d.round_id,
        d.pair_id,
        d.prompt_id,
        p.category,
        x.context as prompt,
        -- a correction pair's chosen text is the user's correction (its feedback row first)
        [{
            'role': 'assistant',
            'content': case
                when d.chosen_source = 'correction' then (
                    select f.correction from feedback as f
                    where f.feedback_id = d.chosen_feedback_ids[1]
                )
                else c.content
            end
        }] as chosen,
        [{'role': 'assistant', 'content': j.content}] as rejected,
        d.chosen_model,
        d.rejected_model,
        d.battle_id,
        d.score_gap,
        d.rule_kind,
        d.rule_min_gap,
        'feedback' as origin,
        d.chosen_conversation_id,
        d.chosen_turn_index,
        d.rejected_conversation_id,
        d.rejected_turn_index,
        d.chosen_feedback_ids,
        d.rejected_feedback_ids,
        d.chosen_source
    from preference_pairs as d
    join prompts as p using (prompt_id)
    join feedback_contexts as x using (pair_id)
    join log_turns as c
        on c.conversation_id = d.chosen_conversation_id and c.turn_index = d.chosen_turn_index
    join log_turns as j
        on j.conversation_id = d.rejected_conversation_id and j.turn_index = d.rejected_turn_index
    where d.origin = 'feedback'
), pairs as (
    select * from battle_pairs
    union all by name
    select * from feedback_pairs
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
