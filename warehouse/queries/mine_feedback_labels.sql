-- The logged answers that feedback labels, one row per answer (conversation, assistant turn),
-- with its resolved label: the input of every feedback mining rule (mine_feedback_sft,
-- mine_feedback_kto, mine_feedback_pairs read it as the temporary table feedback_labelled).
--
-- - An answer counts when its conversation's opening prompt is training data: in the pool
--   (split pool) and not contaminated by the eval set; and when the turns before it (its
--   context, the prompt it answered) are non-empty, hold no tool turn and end with a user turn.
-- - A feedback row's polarity: its label (explicit: the thumb, score or vote as read by
--   pool/logs_feedback.py; a correction is negative), else its implicit category (positive:
--   positive; repeat, correction, complaint, clarification: negative). Neutral, unread and
--   unparsed feedback labels nothing.
-- - Implicit rows count only with a confidence of at least $min_confidence
--   (training.mining.feedback_min_confidence).
-- - Explicit wins: where an answer has any explicit positive or negative row, its implicit rows
--   are ignored. Rows of the deciding source that disagree (an up and a down) leave the answer
--   unlabelled (`conflict`), never guessed.
-- - correction_text: an explicit correction's corrected answer (the latest one), the SFT target
--   of a negative answer; an implicit `correction` (the user's next turn) is a negative label
--   only, never a target: it is a message to the assistant, not an answer.
-- - context_sha: md5 of the context's turns, so answers to the same prompt (the same opening
--   prompt for a first answer, the same conversation so far for a later one) share it.
-- params: min_confidence
with answers as (
    select a.conversation_id, a.turn_index, a.content, c.prompt_id, c.model, c.started_at
    from log_turns as a
    join log_conversations as c using (conversation_id)
    join prompts as p on p.prompt_id = c.prompt_id
    where a.role = 'assistant'
      and p.split = 'pool'
      and p.status <> 'contaminated'
      -- only answers with feedback: the contexts below are built for these alone
      and exists (
          select 1
          from feedback as f
          where f.conversation_id = a.conversation_id and f.turn_index = a.turn_index
      )
), contexts as (
    select
        a.conversation_id,
        a.turn_index,
        list({'role': t.role, 'content': t.content} order by t.turn_index) as context,
        bool_or(t.role = 'tool') as has_tool_turn,
        arg_max(t.role, t.turn_index) as last_role
    from answers as a
    join log_turns as t on t.conversation_id = a.conversation_id and t.turn_index < a.turn_index
    group by a.conversation_id, a.turn_index
), polarities as (
    select
        f.feedback_id,
        f.conversation_id,
        f.turn_index,
        f.source,
        f.correction,
        f.created_at,
        coalesce(
            f.label,
            case
                when f.category = 'positive' then 'positive'
                when f.category in ('repeat', 'correction', 'complaint', 'clarification')
                    then 'negative'
            end
        ) as polarity
    from feedback as f
    where f.source = 'explicit'
       or (f.source = 'implicit' and f.confidence >= $min_confidence)
), usable as (
    select * from polarities where polarity in ('positive', 'negative')
), deciding as (
    select *
    from usable
    qualify source = min(source) over (partition by conversation_id, turn_index)  -- explicit < implicit
), resolved as (
    select
        conversation_id,
        turn_index,
        min(source) as label_source,
        count(distinct polarity) > 1 as conflict,
        min(polarity) as polarity,
        list(feedback_id order by correction is null, created_at desc, feedback_id) as feedback_ids,
        arg_max(correction, created_at) filter (where correction is not null and source = 'explicit')
            as correction_text
    from deciding
    group by conversation_id, turn_index
), labelled as (
    select
        a.conversation_id,
        a.turn_index,
        a.prompt_id,
        a.model,
        a.started_at,
        a.content as answer_text,
        x.context,
        md5(to_json(x.context)::varchar) as context_sha,
        r.label_source,
        r.conflict,
        case when r.conflict then null else r.polarity end as polarity,
        r.feedback_ids,
        case when not r.conflict and r.polarity = 'negative' then r.correction_text end
            as correction_text
    from answers as a
    join contexts as x using (conversation_id, turn_index)
    join resolved as r using (conversation_id, turn_index)
    where not x.has_tool_turn and x.last_role = 'user'
)
select * from labelled order by conversation_id, turn_index
