-- The training stages' own mined rows (llm/stages/): KTO's unpaired examples.

-- one row per KTO example, in TRL's conversational prompt/completion/label form, with where
-- its label came from: `origin` (= source) battle (the labelling battle, its score gap) or
-- feedback (a logged answer users liked or disliked; its prompt is the conversation before
-- that answer, its lineage conversation_id, turn_index and feedback_ids)
create or replace view v_kto_data as
with battle_examples as (
    select
        k.round_id,
        k.example_id,
        k.source,
        k.prompt_id,
        p.category,
        from_json(p.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]') as prompt,
        [{'role': 'assistant', 'content': r.response_text}] as completion,
        k.label,
        k.source_model,
        k.battle_id,
        k.n_battles,
        k.score_gap,
        k.label_strength,
        k.rule_min_gap,
        k.source as origin,
        null::varchar as conversation_id,
        null::integer as turn_index,
        null::varchar[] as feedback_ids
    from kto_examples as k
    join prompts as p using (prompt_id)
    join responses as r on r.response_id = k.response_id
    where k.source <> 'feedback'
), feedback_contexts as (
    select
        k.example_id,
        list({'role': t.role, 'content': t.content} order by t.turn_index) as context
    from kto_examples as k
    join log_turns as t on t.conversation_id = k.conversation_id and t.turn_index < k.turn_index
    where k.source = 'feedback'
    group by k.example_id
), feedback_examples as (
    select
        k.round_id,
        k.example_id,
        k.source,
        k.prompt_id,
        p.category,
        x.context as prompt,
        [{'role': 'assistant', 'content': a.content}] as completion,
        k.label,
        k.source_model,
        k.battle_id,
        k.n_battles,
        k.score_gap,
        k.label_strength,
        k.rule_min_gap,
        k.source as origin,
        k.conversation_id,
        k.turn_index,
        k.feedback_ids
    from kto_examples as k
    join prompts as p using (prompt_id)
    join feedback_contexts as x using (example_id)
    join log_turns as a on a.conversation_id = k.conversation_id and a.turn_index = k.turn_index
    where k.source = 'feedback'
), examples as (
    select * from battle_examples
    union all by name
    select * from feedback_examples
)
select * from examples order by round_id, example_id;
