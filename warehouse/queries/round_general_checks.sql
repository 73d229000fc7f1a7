-- One row per round whose candidate was checked on the general set: the candidate's mean NLL,
-- its ratio to the champion's (above 1: worse than the champion) and its collapse share.
with rounds_with_candidate as (
    select round_id, candidate, champion_before
    from rounds
    where candidate is not null
), candidate_checks as (
    select r.round_id, r.champion_before, g.mean_nll, g.collapse_share
    from rounds_with_candidate as r
    join general_checks as g on g.round_id = r.round_id and g.version_id = r.candidate
), general_by_round as (
    select
        c.round_id,
        c.mean_nll as general_nll,
        c.mean_nll / nullif(h.mean_nll, 0) as general_nll_ratio,
        c.collapse_share as general_collapse_share
    from candidate_checks as c
    left join general_checks as h
        on h.round_id = c.round_id and h.version_id = c.champion_before
)
select * from general_by_round order by round_id
