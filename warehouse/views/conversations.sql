-- The simulated-user conversations' views (issue 37): how the simulated users behave beside the
-- logged users, how far the simulator and the conversation judge agree with what is known to be
-- true (the sandbox's ground truth, the real users' feedback), and what the conversations cost.
--
-- A simulated conversation's verdict is its user's last move: done -> positive, gave_up ->
-- negative (max_turns, unparsed: none). A logged conversation's verdict is the label of its
-- latest labelled answer, read as the feedback miner reads it (mine_feedback_labels.sql): a
-- row's label, else its classified category (positive; repeat, correction, complaint,
-- clarification: negative); explicit rows win over implicit ones; a positive and a negative of
-- the deciding source leave the answer unlabelled. Logs match a simulated conversation of the
-- same opening prompt whose model is the logged model (`model_id`, or `served_model`: the name
-- the version answered as).

-- every feedback row with its polarity: its label, else its classified category (positive;
-- repeat, correction, complaint, clarification: negative); null where neither says. The one
-- reading of a row's polarity: the feedback miner (mine_feedback_labels.sql), the logged
-- verdicts below and the simulator's log openings (sim_log_openings.sql) all read it here.
-- (In this file, not feedback.sql: view files run in name order and the verdicts read it.)
create or replace view v_feedback_polarity as
select
    f.*,
    coalesce(
        f.label,
        case
            when f.category = 'positive' then 'positive'
            when f.category in ('repeat', 'correction', 'complaint', 'clarification')
                then 'negative'
        end
    ) as polarity
from feedback as f;

-- one row per round, persona kind and model: how its conversations went (the realism figures:
-- how often the simulated user ends satisfied, gives up or pushes back, and how long it talks)
create or replace view v_sim_realism as
with conversations as (
    select
        round_id,
        persona_kind,
        model_id,
        n_user_turns,
        n_pushbacks,
        ended_by,
        handled_right
    from sim_conversations
), per_kind as (
    select
        round_id,
        persona_kind,
        model_id,
        count(*) as n_conversations,
        avg(n_user_turns) as mean_user_turns,
        avg((ended_by = 'done')::int) as done_share,
        avg((ended_by = 'gave_up')::int) as gave_up_share,
        avg((ended_by = 'max_turns')::int) as max_turns_share,
        avg((ended_by = 'unparsed')::int) as unparsed_share,
        sum(n_pushbacks) / nullif(sum(n_user_turns - 1), 0) as pushback_share,  -- of replies
        avg((n_pushbacks > 0)::int) as pushed_back_share,  -- of conversations
        avg(handled_right::int) as handled_right_share
    from conversations
    group by round_id, persona_kind, model_id
)
select * from per_kind order by round_id, persona_kind, model_id;

-- one row per logged exchange that has an answer: its user turns, whether the user went on
-- after an answer with negative feedback (pushed back), and its verdict (see the top). A logged
-- conversation whose turns all open a longer one of the same prompt, model and user is that
-- one's prefix (a log with one record per answer logs each answer's history again): it is no
-- row of its own, and its feedback counts on the longest conversation it opens.
create or replace view v_log_conversation_verdicts as
with prefix_pairs as (
    select s.conversation_id as short_id, l.conversation_id as long_id, l.n_turns as long_turns
    from log_conversations as s
    join log_conversations as l
        on l.prompt_id = s.prompt_id
        and l.model is not distinct from s.model
        and l.user_hash is not distinct from s.user_hash
        and l.n_turns > s.n_turns
    join log_turns as ts on ts.conversation_id = s.conversation_id
    join log_turns as tl
        on tl.conversation_id = l.conversation_id
        and tl.turn_index = ts.turn_index
        and tl.role = ts.role
        and tl.content = ts.content
    group by s.conversation_id, l.conversation_id, s.n_turns, l.n_turns
    having count(*) = s.n_turns
), longest_of as (
    select short_id, long_id
    from prefix_pairs
    qualify row_number() over (partition by short_id order by long_turns desc, long_id) = 1
), exchange_feedback as (
    select
        coalesce(o.long_id, f.conversation_id) as conversation_id,
        f.turn_index,
        f.source,
        f.polarity
    from v_feedback_polarity as f
    left join longest_of as o on o.short_id = f.conversation_id
), deciding as (
    select *
    from exchange_feedback
    where polarity in ('positive', 'negative')
    qualify source = min(source) over (partition by conversation_id, turn_index)  -- explicit
), labelled as (
    select conversation_id, turn_index, min(polarity) = 'negative' as negative
    from deciding
    group by conversation_id, turn_index
    having count(distinct polarity) = 1  -- an up and a down of the deciding source: no label
), user_turns as (
    select conversation_id, count(*) as n_user_turns, max(turn_index) as last_user_turn
    from log_turns
    where role = 'user'
    group by conversation_id
), answered as (
    select conversation_id
    from log_turns
    where role = 'assistant'
    group by conversation_id
), latest_label as (
    select conversation_id, negative
    from labelled
    qualify row_number() over (partition by conversation_id order by turn_index desc) = 1
), pushed_back as (
    select distinct l.conversation_id
    from labelled as l
    join user_turns as u using (conversation_id)
    where l.negative and u.last_user_turn > l.turn_index
), verdicts as (
    select
        c.conversation_id,
        c.model,
        c.prompt_id,
        coalesce(u.n_user_turns, 0) as n_user_turns,
        p.conversation_id is not null as pushed_back,
        case when ll.negative then 'negative' when not ll.negative then 'positive' end as verdict
    from log_conversations as c
    join answered as a using (conversation_id)
    anti join longest_of as o on o.short_id = c.conversation_id
    left join user_turns as u using (conversation_id)
    left join latest_label as ll using (conversation_id)
    left join pushed_back as p using (conversation_id)
)
select * from verdicts order by conversation_id;

-- one row per simulated conversation: its verdict, the sandbox's ground truth, and the names
-- its model is logged under
create or replace view v_sim_conversation_verdicts as
with verdicts as (
    select
        conversation_id,
        round_id,
        persona_kind,
        prompt_id,
        model_id,
        coalesce(served_model, model_id) as served_model,
        n_user_turns,
        n_pushbacks,
        ended_by,
        case ended_by when 'done' then 'positive' when 'gave_up' then 'negative' end as verdict,
        handled_right
    from sim_conversations
)
select * from verdicts order by round_id, conversation_id;

-- one row per round and model: the simulated users (all persona kinds) beside the logged users
-- of the same model (log_scope 'same model'), or of every logged model where none is logged
-- under its names (log_scope 'all models'; null figures: no logs at all). Shares of logged
-- conversations are among those with a verdict (labelled feedback); turns over all of them.
create or replace view v_realism_vs_logs as
with simulated as (
    select
        round_id,
        model_id,
        any_value(served_model) as served_model,
        count(*) as n_conversations,
        avg(n_user_turns) as mean_user_turns,
        avg((n_pushbacks > 0)::int) as pushed_back_share,
        avg((ended_by = 'gave_up')::int) as gave_up_share,
        avg((ended_by = 'done')::int) as satisfied_share
    from v_sim_conversation_verdicts
    group by round_id, model_id
), logged as (
    select
        s.round_id,
        s.model_id,
        count(*) as n_conversations,
        count(l.verdict) as n_with_verdict,
        avg(l.n_user_turns) as mean_user_turns,
        avg(l.pushed_back::int) filter (where l.verdict is not null) as pushed_back_share,
        avg((l.verdict = 'negative')::int) as gave_up_share,
        avg((l.verdict = 'positive')::int) as satisfied_share
    from simulated as s
    join v_log_conversation_verdicts as l
        on l.model = s.model_id or l.model = s.served_model
    group by s.round_id, s.model_id
), all_logged as (
    select
        count(*) as n_conversations,
        count(verdict) as n_with_verdict,
        avg(n_user_turns) as mean_user_turns,
        avg(pushed_back::int) filter (where verdict is not null) as pushed_back_share,
        avg((verdict = 'negative')::int) as gave_up_share,
        avg((verdict = 'positive')::int) as satisfied_share
    from v_log_conversation_verdicts
), side_by_side as (
    select
        s.round_id,
        s.model_id,
        s.n_conversations,
        s.mean_user_turns,
        s.pushed_back_share,
        s.gave_up_share,
        s.satisfied_share,
        case when l.model_id is not null then 'same model' else 'all models' end as log_scope,
        coalesce(l.n_conversations, a.n_conversations) as log_n_conversations,
        coalesce(l.n_with_verdict, a.n_with_verdict) as log_n_with_verdict,
        coalesce(l.mean_user_turns, a.mean_user_turns) as log_mean_user_turns,
        case when l.model_id is not null then l.pushed_back_share else a.pushed_back_share end
            as log_pushed_back_share,
        case when l.model_id is not null then l.gave_up_share else a.gave_up_share end
            as log_gave_up_share,
        case when l.model_id is not null then l.satisfied_share else a.satisfied_share end
            as log_satisfied_share
    from simulated as s
    cross join all_logged as a
    left join logged as l using (round_id, model_id)
)
select * from side_by_side order by round_id, model_id;

-- one row per round and persona kind: how far the simulation agrees with what is known.
-- Sandbox ground truth (`handled_right`): the judge's battle outcome where exactly one of the
-- two conversations handled the persona's move right (n_decisive_truth, n_agree, agreement),
-- and the simulated user's verdict against its own conversation's truth (user_truth_*). Real
-- users' feedback: the simulated user's verdict against the verdicts of logged conversations
-- of the same model and opening prompt, one count per (simulated, logged) pair
-- (user_feedback_*); and the judge's outcome against the real users' preference between the
-- same two models on the same opening (the model whose logged conversations on it have the
-- larger positive share; equal: no preference; judge_feedback_*).
create or replace view v_conversation_calibration as
with battles_with_truth as (
    select
        b.round_id,
        a.persona_kind,
        b.prompt_id,
        b.model_a,
        b.model_b,
        b.outcome,
        a.handled_right as right_a,
        c.handled_right as right_b
    from battles as b
    join v_sim_conversation_verdicts as a
        on a.round_id = b.round_id and a.prompt_id = b.prompt_id and a.model_id = b.model_a
    join v_sim_conversation_verdicts as c
        on c.round_id = b.round_id and c.prompt_id = b.prompt_id and c.model_id = b.model_b
    where b.purpose = 'eval_conversation'
), judge_truth as (
    select
        round_id,
        persona_kind,
        count(*) as n_decisive_truth,
        sum((outcome = case when right_a then 'win' else 'loss' end)::int)::bigint as n_agree
    from battles_with_truth
    where right_a is not null and right_b is not null and right_a <> right_b
    group by round_id, persona_kind
), user_truth as (
    select
        round_id,
        persona_kind,
        count(*) as n_user_truth,
        sum((verdict = case when handled_right then 'positive' else 'negative' end)::int)::bigint
            as n_user_agree_truth
    from v_sim_conversation_verdicts
    where verdict is not null and handled_right is not null
    group by round_id, persona_kind
), user_feedback as (
    select
        s.round_id,
        s.persona_kind,
        count(*) as n_user_feedback,
        sum((s.verdict = l.verdict)::int)::bigint as n_user_agree_feedback
    from v_sim_conversation_verdicts as s
    join v_log_conversation_verdicts as l
        on l.prompt_id = s.prompt_id and (l.model = s.model_id or l.model = s.served_model)
    where s.verdict is not null and l.verdict is not null
    group by s.round_id, s.persona_kind
), logged_model_on_prompt as (
    select
        s.round_id,
        s.prompt_id,
        s.model_id,
        avg((l.verdict = 'positive')::int) as positive_share
    from v_sim_conversation_verdicts as s
    join v_log_conversation_verdicts as l
        on l.prompt_id = s.prompt_id and (l.model = s.model_id or l.model = s.served_model)
    where l.verdict is not null
    group by s.round_id, s.prompt_id, s.model_id
), judge_feedback as (
    select
        b.round_id,
        b.persona_kind,
        count(*) as n_judge_feedback,
        sum((b.outcome = case when la.positive_share > lb.positive_share then 'win' else 'loss'
            end)::int)::bigint as n_judge_agree_feedback
    from battles_with_truth as b
    join logged_model_on_prompt as la
        on la.round_id = b.round_id and la.prompt_id = b.prompt_id and la.model_id = b.model_a
    join logged_model_on_prompt as lb
        on lb.round_id = b.round_id and lb.prompt_id = b.prompt_id and lb.model_id = b.model_b
    where la.positive_share <> lb.positive_share
    group by b.round_id, b.persona_kind
), kinds as (
    select distinct round_id, persona_kind from sim_conversations
), per_kind as (
    select
        k.round_id,
        k.persona_kind,
        coalesce(jt.n_decisive_truth, 0) as n_decisive_truth,
        coalesce(jt.n_agree, 0) as n_agree,
        jt.n_agree / nullif(jt.n_decisive_truth, 0) as agreement,
        coalesce(ut.n_user_truth, 0) as n_user_truth,
        coalesce(ut.n_user_agree_truth, 0) as n_user_agree_truth,
        ut.n_user_agree_truth / nullif(ut.n_user_truth, 0) as user_truth_agreement,
        coalesce(uf.n_user_feedback, 0) as n_user_feedback,
        coalesce(uf.n_user_agree_feedback, 0) as n_user_agree_feedback,
        uf.n_user_agree_feedback / nullif(uf.n_user_feedback, 0) as user_feedback_agreement,
        coalesce(jf.n_judge_feedback, 0) as n_judge_feedback,
        coalesce(jf.n_judge_agree_feedback, 0) as n_judge_agree_feedback,
        jf.n_judge_agree_feedback / nullif(jf.n_judge_feedback, 0) as judge_feedback_agreement
    from kinds as k
    left join judge_truth as jt using (round_id, persona_kind)
    left join user_truth as ut using (round_id, persona_kind)
    left join user_feedback as uf using (round_id, persona_kind)
    left join judge_feedback as jf using (round_id, persona_kind)
)
select * from per_kind order by round_id, persona_kind;

-- one row per round and part of the conversation A/B (simulated user, model, conversation
-- judge): the requests it made (turns or games; the model's: its answers after the opening,
-- which is its single-turn eval answer, counted with the eval's answers), the calls this round
-- paid for (a request answered by the call cache, or paid in another round, is not paid
-- again), the failed ones, tokens and cost. A simulated user's call that failed ends no stored conversation: it is
-- found by its endpoint (`sim_conversations.simulator`).
create or replace view v_conversation_costs as
with stored_requests as (
    select s.round_id, 'simulated user' as part, t.call_id
    from sim_turns as t
    join sim_conversations as s using (conversation_id)
    where t.role = 'user' and t.call_id is not null
    union all
    select s.round_id, 'model' as part, t.call_id
    from sim_turns as t
    join sim_conversations as s using (conversation_id)
    where t.role = 'assistant' and t.call_id is not null
    union all
    select b.round_id, 'conversation judge' as part, j.call_id
    from judgments as j
    join battles as b using (battle_id)
    where b.purpose = 'eval_conversation' and j.call_id is not null
), simulators as (
    select distinct round_id, simulator from sim_conversations
), failed_simulator_calls as (
    select c.round_id, 'simulated user' as part, c.call_id
    from llm_calls as c
    join simulators as s on s.round_id = c.round_id and s.simulator = c.endpoint
    where c.error is not null
), calls as (
    select round_id, part, call_id, true as stored from stored_requests
    union all
    select round_id, part, call_id, false as stored from failed_simulator_calls
), paid as (
    select distinct k.round_id, k.part, c.call_id, c.error, c.prompt_tokens,
        c.completion_tokens, c.cost_usd
    from calls as k
    join llm_calls as c on c.call_id = k.call_id and c.round_id = k.round_id
), requests as (
    select round_id, part, count(*) filter (where stored) as n_requests
    from calls
    group by round_id, part
), paid_per_part as (
    select
        round_id,
        part,
        count(*) as n_calls_paid,
        count(error) as n_errors,
        (coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0))::bigint
            as n_tokens,
        coalesce(sum(cost_usd), 0) as cost_usd
    from paid
    group by round_id, part
), per_part as (
    select
        r.round_id,
        r.part,
        r.n_requests,
        coalesce(p.n_calls_paid, 0) as n_calls_paid,
        coalesce(p.n_errors, 0) as n_errors,
        coalesce(p.n_tokens, 0) as n_tokens,
        coalesce(p.cost_usd, 0) as cost_usd
    from requests as r
    left join paid_per_part as p using (round_id, part)
)
select * from per_part order by round_id, part;
