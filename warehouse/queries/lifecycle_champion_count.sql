-- How many model versions are champion (0 before the round-0 student is registered).
select count(*) from model_versions where status = 'champion'
