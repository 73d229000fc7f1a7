-- The round's candidate becomes champion or rejected. params: new status, candidate id
update model_versions set status = ? where version_id = ? and status = 'candidate'
