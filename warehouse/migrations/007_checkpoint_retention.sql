-- schema version 5: retention deletes old rejected checkpoints but keeps their history; the
-- model version row stays, with the time its checkpoint directory was deleted.
alter table model_versions add column if not exists checkpoint_deleted_at timestamp;
