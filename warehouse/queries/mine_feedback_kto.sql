-- KTO examples from users' feedback: every labelled answer not mined yet, desirable when its
-- label is positive, undesirable when negative (TRL's unpaired `label`); source feedback,
-- n_battles 0. Reads the temporary table feedback_labelled (mine_feedback_labels.sql). Keyed
-- by the exchange (user, model, context, answer), not the round: mined once.
-- params: round_id
with examples as (
    select
        md5(concat_ws('|', 'feedback', exchange_id)) as example_id,
        'feedback' as source,
        $round_id::integer as round_id,
        prompt_id,
        null::varchar as response_id,
        polarity = 'positive' as label,
        model as source_model,
        null::varchar as battle_id,
        0 as n_battles,
        null::double as score_gap,
        null::double as label_strength,
        null::double as rule_min_gap,
        conversation_id,
        turn_index,
        feedback_ids
    from feedback_labelled
    where polarity in ('positive', 'negative')
), new_examples as (
    select *
    from examples as e
    where not exists (select 1 from kto_examples as k where k.example_id = e.example_id)
)
select * from new_examples order by example_id
