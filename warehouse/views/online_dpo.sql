-- The online-dpo stage's pairs (llm/stages/online_dpo.py, tasks/online_pairs.py): the
-- champion's samples ranked by reward models, best against worst.

-- one row per online-dpo pair (one per round and prompt), in TRL's conversational
-- prompt/chosen/rejected form, with the samples it came from (response ids, sample_idx,
-- rewards) and what scored them
create or replace view v_online_dpo_pairs as
with pairs as (
    select
        d.round_id,
        d.pair_id,
        d.origin,
        d.prompt_id,
        p.category,
        from_json(p.messages, '[{"role": "VARCHAR", "content": "VARCHAR"}]') as prompt,
        [{'role': 'assistant', 'content': c.response_text}] as chosen,
        [{'role': 'assistant', 'content': j.response_text}] as rejected,
        d.chosen_model as sampled_from,
        d.chosen_response_id,
        c.sample_idx as chosen_sample_idx,
        d.chosen_score,
        d.rejected_response_id,
        j.sample_idx as rejected_sample_idx,
        d.rejected_score,
        d.score_gap,
        d.n_scored,
        d.rule_min_gap,
        d.scored_by
    from preference_pairs as d
    join prompts as p using (prompt_id)
    join responses as c on c.response_id = d.chosen_response_id
    join responses as j on j.response_id = d.rejected_response_id
    where d.kind = 'online-dpo'
)
select * from pairs order by round_id, pair_id;
