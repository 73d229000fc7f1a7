-- stored games of the given battles (one row per judgment); ? = list of battle ids
with wanted as (
    select unnest(?::varchar[]) as battle_id
),

stored as (
    select
        j.judgment_id,
        j.battle_id,
        j.game_order,
        j.judge,
        j.prompt_version,
        j.raw_text,
        j.score_first,
        j.score_second,
        j.verdict,
        j.parse_ok,
        j.call_id,
        j.error,
        j.label_strength
    from judgments as j
    join wanted as w on w.battle_id = j.battle_id
)

select * from stored
