-- Logged conversations a simulated user's goal may be drawn from (evaluation.conversations.goals
-- logs or both): one row per opening prompt that is in the pool and that no training slice has
-- drawn, nor absorbed as a near-duplicate by one that has (the MinHash check against the
-- slices follows in tasks/conversation_goals.py).
-- The row is the prompt's longest logged conversation (ties: the first id), with the user's turn
-- after its first answer and whether that first answer had negative feedback, explicit or
-- classified, in any logged conversation showing the same opening and the same first answer (a
-- log with one record per answer logs an exchange once per later answer).
with sliced as (
    select prompt_id from prompts where slice_id is not null
), logged as (
    select c.conversation_id, c.prompt_id, c.n_turns
    from log_conversations as c
    join prompts as p using (prompt_id)
    where p.slice_id is null
        and (p.duplicate_of is null or p.duplicate_of not in (select prompt_id from sliced))
), first_answers as (
    select
        l.conversation_id,
        l.prompt_id,
        l.n_turns,
        t.turn_index as answer_index,
        t.content as answer
    from logged as l
    join log_turns as t using (conversation_id)
    where t.role = 'assistant'
    qualify row_number() over (partition by l.conversation_id order by t.turn_index) = 1
), first_answer_feedback as (
    -- read as v_log_conversation_verdicts reads it: label, else classified category; explicit
    -- rows win; a positive and a negative of the deciding source: no label
    select
        a.prompt_id,
        a.answer,
        f.source,
        f.polarity
    from first_answers as a
    join v_feedback_polarity as f on f.conversation_id = a.conversation_id and f.turn_index = a.answer_index
), deciding as (
    select *
    from first_answer_feedback
    where polarity in ('positive', 'negative')
    qualify source = min(source) over (partition by prompt_id, answer)  -- explicit < implicit
), negative as (
    select prompt_id, answer
    from deciding
    group by prompt_id, answer
    having count(distinct polarity) = 1 and min(polarity) = 'negative'
), longest as (
    select *
    from first_answers
    qualify row_number() over (
        partition by prompt_id order by n_turns desc, conversation_id
    ) = 1
), openings as (
    select
        l.conversation_id,
        l.prompt_id,
        t.content as next_user_turn,
        n.prompt_id is not null as first_answer_negative
    from longest as l
    left join log_turns as t
        on t.conversation_id = l.conversation_id
        and t.turn_index = l.answer_index + 1
        and t.role = 'user'
    left join negative as n on n.prompt_id = l.prompt_id and n.answer = l.answer
)
select * from openings order by conversation_id
