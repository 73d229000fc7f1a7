-- stored battles among the given ids (one row per battle); ? = list of battle ids
with wanted as (
    select unnest(?::varchar[]) as battle_id
),

stored as (
    select
        b.battle_id,
        b.outcome
    from battles as b
    join wanted as w on w.battle_id = b.battle_id
)

select * from stored
