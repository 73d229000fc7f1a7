-- A model version's checkpoint directory. params: version_id
with version as (
    select checkpoint_path from model_versions where version_id = $version_id
)
select * from version
