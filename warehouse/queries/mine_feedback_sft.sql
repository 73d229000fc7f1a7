-- SFT examples from users' feedback: every labelled answer not mined yet whose label is
-- positive (target_source feedback: the logged answer is the target) or negative with an
-- explicit correction (target_source correction: the user's corrected answer is the target,
-- feedback.correction of feedback_ids[1]). The prompt is the conversation before the answer
-- (v_sft_data builds `messages` from log_turns). Reads the temporary table feedback_labelled
-- (mine_feedback_labels.sql). Keyed by the exchange (user, model, context, answer), not the
-- round: mined once.
-- params: round_id
with targets as (
    select *, 'feedback' as target_source
    from feedback_labelled
    where polarity = 'positive'
    union all
    select *, 'correction' as target_source
    from feedback_labelled
    where polarity = 'negative' and correction_text is not null
), examples as (
    select
        md5(concat_ws('|', 'feedback', exchange_id)) as example_id,
        $round_id::integer as round_id,
        prompt_id,
        null::varchar as battle_id,
        null::varchar as response_id,
        model as source_model,
        'sft' as rule_kind,
        null::double as rule_min_gap,
        null::double as score_gap,
        target_source,
        null::varchar as target_call_id,
        'feedback' as origin,
        conversation_id,
        turn_index,
        feedback_ids
    from targets
), new_examples as (
    select *
    from examples as e
    where not exists (select 1 from sft_examples as s where s.example_id = e.example_id)
)
select * from new_examples order by example_id
