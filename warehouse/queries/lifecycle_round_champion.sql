-- The champion a round battled with, as recorded when it first started. params: round id
with round_champion as (
    select m.version_id, m.checkpoint_path, m.status
    from rounds as r
    join model_versions as m on m.version_id = r.champion_before
    where r.round_id = ?
)
select * from round_champion
