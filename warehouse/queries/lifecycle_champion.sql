-- The current champion: the newest model version with status champion.
with champions as (
    select version_id, checkpoint_path, status, created_at
    from model_versions
    where status = 'champion'
)
select version_id, checkpoint_path, status from champions order by created_at desc limit 1
