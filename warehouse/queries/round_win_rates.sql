-- The champion's record against each reference in one round's train battles (ties as half).
-- params: round_id
with train_battles as (
    select model_b as opponent, outcome
    from battles
    where round_id = $round_id and purpose = 'train'
), per_opponent as (
    select
        opponent,
        count(*) filter (where outcome = 'win') as wins,
        count(*) filter (where outcome = 'tie') as ties,
        count(*) filter (where outcome = 'loss') as losses,
        count(*) filter (where outcome not in ('win', 'tie', 'loss')) as excluded,
        (count(*) filter (where outcome = 'win') + 0.5 * count(*) filter (where outcome = 'tie'))
            / nullif(count(*) filter (where outcome in ('win', 'tie', 'loss')), 0) as win_rate
    from train_battles
    group by opponent
)
select * from per_opponent order by opponent
