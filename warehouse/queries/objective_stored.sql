-- A version's figures on one version of a user's objective set, as first stored with an A/B
-- (as its candidate or as its champion), so a version is measured once per file version.
-- params: version_id, set_sha256
with measured as (
    select objective_n_items as n_items, objective_correct_candidate as n_correct, created_at
    from evaluations
    where candidate = $version_id
        and objective_source = 'objective_set'
        and objective_set_sha256 = $set_sha256
        and objective_correct_candidate is not null
    union all
    select objective_n_items as n_items, objective_correct_champion as n_correct, created_at
    from evaluations
    where champion = $version_id
        and objective_source = 'objective_set'
        and objective_set_sha256 = $set_sha256
        and objective_correct_champion is not null
), first_measured as (
    select n_items, n_correct from measured order by created_at limit 1
)
select * from first_measured
