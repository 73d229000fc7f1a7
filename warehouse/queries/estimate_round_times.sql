-- One row per finished round, as measured: its stage, how many prompts it drew, its wall time
-- and the parts of it that do not scale with the prompts alone (training, the general check).
-- `stage_ordinal`: the how-many-th round of its stage kind it was (training on accumulated
-- examples grows with it). General checks copied from an earlier round took no time here, so
-- `n_general` counts the versions measured in the round. `n_student_answers`: the model
-- versions' answers generated in the round, `n_champion_eval_answers` of them the champion's
-- on the eval prompts (generated once per champion, then reused).
with all_rounds as (
    select
        round_id,
        stage,
        status,
        slice_id,
        champion_before,
        started_at,
        wall_s,
        row_number() over (partition by stage order by round_id) as stage_ordinal
    from rounds
), slice_sizes as (
    select slice_id, count(*) as n_prompts
    from prompts
    where slice_id is not null
    group by slice_id
), training as (
    select round_id, sum(coalesce(wall_s, 0)) as train_s
    from training_runs
    group by round_id
), general as (
    select g.round_id, sum(coalesce(g.wall_s, 0)) as general_s, count(*) as n_general
    from general_checks as g
    join rounds as r using (round_id)
    where r.started_at is null or g.measured_at >= r.started_at
    group by g.round_id
), student_answers as (
    select
        a.round_id,
        count(*) as n_student_answers,
        count(*) filter (where p.split = 'eval' and a.model_id = r.champion_before)
            as n_champion_eval_answers
    from responses as a
    join rounds as r using (round_id)
    join prompts as p using (prompt_id)
    where a.model_id not like 'ref:%'
    group by a.round_id
), round_times as (
    select
        r.round_id,
        r.stage,
        r.stage_ordinal,
        coalesce(s.n_prompts, 0) as n_prompts,
        r.wall_s,
        coalesce(t.train_s, 0) as train_s,
        coalesce(g.general_s, 0) as general_s,
        coalesce(g.n_general, 0) as n_general,
        coalesce(a.n_student_answers, 0) as n_student_answers,
        coalesce(a.n_champion_eval_answers, 0) as n_champion_eval_answers
    from all_rounds as r
    left join slice_sizes as s using (slice_id)
    left join training as t using (round_id)
    left join general as g using (round_id)
    left join student_answers as a using (round_id)
    where r.status = 'done' and r.wall_s is not null
)
select * from round_times order by round_id
