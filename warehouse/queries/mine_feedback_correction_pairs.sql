-- Preference pairs (DPO or reward model) from users' corrections: a logged answer the user
-- corrected in explicit feedback (feedback_labelled.correction_text: negative, the latest
-- explicit correction) makes a pair in the answer's context, the user's correction chosen
-- (chosen_source correction) over the answer it corrects. Both sides point to the corrected
-- answer (conversation, turn: its context is the prompt) and to the feedback behind its label
-- (the correction row first: v_preference_pairs reads the chosen text from it). A correction
-- equal to the answer makes no pair. Independent of the same-context rule
-- (mine_feedback_pairs.sql): a corrected answer may also be rejected there. Reads the temporary
-- table feedback_labelled (mine_feedback_labels.sql). Keyed by the exchange, not the round:
-- mined once per kind.
-- params: round_id, kind
with corrected as (
    select *
    from feedback_labelled
    where polarity = 'negative'
      and correction_text is not null
      and trim(correction_text) <> trim(answer_text)
), pairs as (
    select
        md5(concat_ws('|', 'feedback-correction', $kind, exchange_id)) as pair_id,
        $kind as kind,
        $round_id::integer as round_id,
        prompt_id,
        null::varchar as battle_id,
        null::varchar as chosen_response_id,
        null::varchar as rejected_response_id,
        null::varchar as chosen_model,
        model as rejected_model,
        $kind as rule_kind,
        null::double as rule_min_gap,
        null::double as score_gap,
        null::double as label_strength,
        'feedback' as origin,
        conversation_id as chosen_conversation_id,
        turn_index as chosen_turn_index,
        conversation_id as rejected_conversation_id,
        turn_index as rejected_turn_index,
        feedback_ids as chosen_feedback_ids,
        feedback_ids as rejected_feedback_ids,
        'correction' as chosen_source
    from corrected
), new_pairs as (
    select *
    from pairs as p
    where not exists (select 1 from preference_pairs as d where d.pair_id = p.pair_id)
)
select * from new_pairs order by pair_id
