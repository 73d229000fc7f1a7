-- A model version's general check over one version of the general set, as first measured
-- (a later round, or a resumed one, reuses it). params: version_id, set_sha256
with checks as (
    select n_items, mean_nll, collapse_share, set_sha256, wall_s, measured_at
    from general_checks
    where version_id = $version_id and set_sha256 = $set_sha256
    order by measured_at, round_id
    limit 1
)
select * from checks
