-- The rounds that finished between two times (a run's span, UTC): how many, and their summed
-- wall time (the rest of the run's span was spent outside the rounds).
with finished as (
    select wall_s
    from rounds
    where finished_at between ? and ?
)
select count(*) as n_rounds, coalesce(sum(wall_s), 0) as rounds_s from finished
