-- Every judged game of a round (both purposes), for the judge audit.
-- params: round_id
with games as (
    select battle_id, game_order, verdict, parse_ok
    from judgments
    where round_id = $round_id and error is null
)
select * from games order by battle_id, game_order
