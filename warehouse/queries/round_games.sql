-- Every game the model judge decided in a round (both purposes), for the judge audit.
-- params: round_id, judge
with games as (
    select battle_id, game_order, verdict, parse_ok
    from judgments
    where round_id = $round_id and judge = $judge and raw_text is not null  -- failed calls have no reply
)
select * from games order by battle_id, game_order
