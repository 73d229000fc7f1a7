-- Every battle of a round (train and eval) as model A, model B and the winner's side, for ratings.
-- params: round_id
with decided as (
    select
        model_a,
        model_b,
        case outcome when 'win' then 'a' when 'loss' then 'b' when 'tie' then 'tie' else outcome end
            as winner
    from battles
    where round_id = $round_id
)
select * from decided
