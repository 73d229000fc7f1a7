-- The champion a promoted candidate replaces is retired. params: champion id
update model_versions set status = 'retired' where version_id = ? and status = 'champion'
