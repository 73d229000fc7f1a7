-- The round's Bradley-Terry ratings, best first. params: round_id
with round_ratings as (
    select model_id, rating, ci_low, ci_high, n_battles from ratings where round_id = $round_id
)
select * from round_ratings order by rating desc
