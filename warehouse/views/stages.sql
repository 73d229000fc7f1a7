-- The training stages' own mined rows (llm/stages/): KTO's unpaired examples.

-- one row per KTO example, in TRL's conversational prompt/completion/label form, with where
-- its label came from (source, the labelling battle, its score gap)
create or replace view v_kto_data as
with examples as (
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
        k.rule_min_gap
    from kto_examples as k
    join prompts as p using (prompt_id)
    join responses as r on r.response_id = k.response_id
)
select * from examples order by round_id, example_id;
