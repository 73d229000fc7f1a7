-- The feedback loop's views (issue 32): logged conversations and the feedback on their answers.

-- one row per day (UTC: the conversation's logged time, else when it was added), feedback
-- source (explicit | implicit) and label (positive | negative | neutral | null: cannot say)
create or replace view v_feedback_daily as
with dated as (
    select
        cast(coalesce(c.started_at, c.added_at) as date) as day,
        f.source,
        f.label,
        f.conversation_id
    from feedback as f
    join log_conversations as c using (conversation_id)
), daily as (
    select
        day,
        source,
        label,
        count(*) as n_feedback,
        count(distinct conversation_id) as n_conversations
    from dated
    group by day, source, label
)
select * from daily order by day, source, label;

-- one row per feedback source and category: an implicit row's category from the classifier
-- (repeat, correction, complaint, clarification, positive), an explicit row's kind (thumb,
-- score, vote, category, comment, correction); with its labels counted
create or replace view v_feedback_by_category as
with categorised as (
    select source, coalesce(category, kind) as category, label from feedback
), counted as (
    select
        source,
        category,
        count(*) as n_feedback,
        count(*) filter (where label = 'positive') as n_positive,
        count(*) filter (where label = 'negative') as n_negative,
        count(*) filter (where label = 'neutral') as n_neutral
    from categorised
    group by source, category
)
select * from counted order by source, category;

-- one row per model (version) that answered, as logged: its conversations, the feedback on its
-- answers, and the positive share among positive and negative labels (null: none labelled)
create or replace view v_feedback_by_model as
with answered as (
    select coalesce(c.model, '(not logged)') as model, c.conversation_id, f.feedback_id, f.label
    from log_conversations as c
    left join feedback as f using (conversation_id)
), counted as (
    select
        model,
        count(distinct conversation_id) as n_conversations,
        count(feedback_id) as n_feedback,
        count(*) filter (where label = 'positive') as n_positive,
        count(*) filter (where label = 'negative') as n_negative
    from answered
    group by model
), shares as (
    select
        *,
        n_positive / nullif(n_positive + n_negative, 0) as positive_share
    from counted
)
select * from shares order by model;
