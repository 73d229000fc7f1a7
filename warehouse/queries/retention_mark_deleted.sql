-- The version's checkpoint directory was deleted by retention. params: time, version id
update model_versions set checkpoint_deleted_at = ? where version_id = ? and status = 'rejected'
