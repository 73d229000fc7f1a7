-- The logged answers that feedback labels, one row per exchange (a user's context, the
-- model's answer to it), with its resolved label: the input of every feedback mining rule
-- (mine_feedback_sft, mine_feedback_kto, mine_feedback_pairs read it as the temporary table
-- feedback_labelled).
--
-- - An exchange is the same user (user_hash), model, context (the turns before the answer)
--   and answer text: a log with one record per request (OpenAI chat-completion logs) holds an
--   answer once as the last turn of its own request and again inside every later request of
--   the conversation; feedback on any of those copies is feedback on the one exchange. Its row
--   stands for it by the copy with the fewest turns (then the smallest conversation id).
-- - An answer counts when its conversation's opening prompt is training data: in the pool
--   (split pool) and not contaminated by the eval set; and when the turns before it (its
--   context, the prompt it answered) are non-empty, hold no tool turn and end with a user turn.
-- - A feedback row's polarity: its label (explicit: the thumb, score or vote as read by
--   pool/logs_feedback.py; a correction is negative), else its implicit category (positive:
--   positive; repeat, correction, complaint, clarification: negative). Neutral, unread and
--   unparsed feedback labels nothing.
-- - Implicit rows count only with a confidence of at least $min_confidence
--   (training.mining.feedback_min_confidence).
-- - Explicit wins: where an exchange has any explicit positive or negative row, its implicit
--   rows are ignored. Rows of the deciding source that disagree (an up and a down) leave the
--   exchange unlabelled (`conflict`), never guessed.
-- - correction_text: an explicit correction's corrected answer (the latest one), the SFT target
--   of a negative answer; an implicit `correction` (the user's next turn) is a negative label
--   only, never a target: it is a message to the assistant, not an answer.
-- - context_sha: md5 of the context's turns, so answers to the same prompt (the same opening
--   prompt for a first answer, the same conversation so far for a later one) share it;
--   exchange_id: md5 of (user, model, context_sha, answer), the mined rows' key.
-- params: min_confidence
with answers as (
    select
        a.conversation_id, a.turn_index, a.content, c.prompt_id, c.model, c.started_at,
        c.user_hash, c.n_turns
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
), exchanges as (
    select
        a.*,
        x.context,
        md5(to_json(x.context)::varchar) as context_sha,
        md5(concat_ws(
            '|', coalesce(a.user_hash, ''), coalesce(a.model, ''),
            md5(to_json(x.context)::varchar), md5(a.content)
        )) as exchange_id
    from answers as a
    join contexts as x using (conversation_id, turn_index)
    where not x.has_tool_turn and x.last_role = 'user'
), representatives as (
    select *
    from exchanges
    qualify row_number() over (
        partition by exchange_id order by n_turns, conversation_id, turn_index
    ) = 1
), polarities as (
    select
        f.feedback_id,
        e.exchange_id,
        f.source,
        f.correction,
        f.created_at,
        f.polarity
    from v_feedback_polarity as f
    join exchanges as e using (conversation_id, turn_index)
    where f.source = 'explicit'
       or (f.source = 'implicit' and f.confidence >= $min_confidence)
), usable as (
    select * from polarities where polarity in ('positive', 'negative')
), deciding as (
    select *
    from usable
    qualify source = min(source) over (partition by exchange_id)  -- explicit < implicit
), resolved as (
    select
        exchange_id,
        min(source) as label_source,
        count(distinct polarity) > 1 as conflict,
        min(polarity) as polarity,
        list(feedback_id order by correction is null, created_at desc, feedback_id) as feedback_ids,
        arg_max(correction, created_at) filter (where correction is not null and source = 'explicit')
            as correction_text
    from deciding
    group by exchange_id
), labelled as (
    select
        e.exchange_id,
        e.conversation_id,
        e.turn_index,
        e.prompt_id,
        e.model,
        e.started_at,
        e.content as answer_text,
        e.context,
        e.context_sha,
        r.label_source,
        r.conflict,
        case when r.conflict then null else r.polarity end as polarity,
        r.feedback_ids,
        case when not r.conflict and r.polarity = 'negative' then r.correction_text end
            as correction_text
    from representatives as e
    join resolved as r using (exchange_id)
)
select * from labelled order by conversation_id, turn_index
