-- Rejected candidates whose checkpoint is still on disk, newest first (retention keeps the first K).
with rejected as (
    select version_id, checkpoint_path, stage, round_id, created_at
    from model_versions
    where status = 'rejected' and checkpoint_deleted_at is null
)
select version_id, checkpoint_path, stage, round_id
from rejected
order by created_at desc, round_id desc, version_id desc
