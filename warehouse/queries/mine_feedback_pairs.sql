-- Preference pairs (DPO or reward model) from users' feedback: a positive and a negative
-- answer to the same context (the same turns before the answer: context_sha) make a pair,
-- the positive chosen. Each answer is in at most one feedback pair of a kind: answers already
-- paired are left out, then per context the n-th positive (oldest first) meets the n-th
-- negative; answers with the same text make no pair. chosen_source feedback: the chosen text
-- is the positive logged answer. Pairs of the correction rule (mine_feedback_correction_pairs:
-- a correction chosen over the answer it corrects) do not count as pairing an answer here.
-- Reads the temporary table feedback_labelled (mine_feedback_labels.sql). Keyed by its two
-- exchanges, not the round.
-- params: round_id, kind
with paired_answers as (
    select chosen_conversation_id as conversation_id, chosen_turn_index as turn_index
    from preference_pairs
    where kind = $kind and origin = 'feedback' and chosen_source is distinct from 'correction'
    union all
    select rejected_conversation_id, rejected_turn_index
    from preference_pairs
    where kind = $kind and origin = 'feedback' and chosen_source is distinct from 'correction'
), unpaired as (
    select l.*
    from feedback_labelled as l
    where l.polarity in ('positive', 'negative')
      and not exists (
          select 1
          from paired_answers as p
          where p.conversation_id = l.conversation_id and p.turn_index = l.turn_index
      )
), ranked as (
    select
        *,
        row_number() over (
            partition by context_sha, polarity
            order by started_at nulls last, conversation_id, turn_index
        ) as rank_in_side
    from unpaired
), pairs as (
    select
        md5(concat_ws('|', 'feedback', $kind, c.exchange_id, r.exchange_id)) as pair_id,
        $kind as kind,
        $round_id::integer as round_id,
        c.prompt_id,
        null::varchar as battle_id,
        null::varchar as chosen_response_id,
        null::varchar as rejected_response_id,
        c.model as chosen_model,
        r.model as rejected_model,
        $kind as rule_kind,
        null::double as rule_min_gap,
        null::double as score_gap,
        null::double as label_strength,
        'feedback' as origin,
        c.conversation_id as chosen_conversation_id,
        c.turn_index as chosen_turn_index,
        r.conversation_id as rejected_conversation_id,
        r.turn_index as rejected_turn_index,
        c.feedback_ids as chosen_feedback_ids,
        r.feedback_ids as rejected_feedback_ids,
        'feedback' as chosen_source
    from ranked as c
    join ranked as r
        on r.context_sha = c.context_sha
        and r.rank_in_side = c.rank_in_side
        and r.polarity = 'negative'
    where c.polarity = 'positive'
      and c.answer_text <> r.answer_text
)
select * from pairs order by pair_id
