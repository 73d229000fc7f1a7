-- One row per round whose candidate was checked on the general set: the candidate's mean NLL,
-- its ratio to the champion's (above 1: worse than the champion) and its collapse share.
with latest_evaluation as (
    select round_id, candidate, champion
    from evaluations
    qualify row_number() over (partition by round_id order by created_at desc) = 1
), candidate_checks as (
    select e.round_id, e.champion, g.mean_nll, g.collapse_share
    from latest_evaluation as e
    join general_checks as g on g.round_id = e.round_id and g.version_id = e.candidate
), general_by_round as (
    select
        c.round_id,
        c.mean_nll as general_nll,
        c.mean_nll / nullif(h.mean_nll, 0) as general_nll_ratio,
        c.collapse_share as general_collapse_share
    from candidate_checks as c
    left join general_checks as h on h.round_id = c.round_id and h.version_id = c.champion
)
select * from general_by_round order by round_id
