-- The first champion: the model the earliest round started from (its champion before), with
-- its checkpoint, for the general-set limit against it (issue 31).
with first_round as (
    select champion_before
    from rounds
    where champion_before is not null
    order by round_id
    limit 1
), first_champion as (
    select v.version_id, v.checkpoint_path
    from first_round as f
    join model_versions as v on v.version_id = f.champion_before
)
select * from first_champion
