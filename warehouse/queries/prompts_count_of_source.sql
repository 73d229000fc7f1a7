-- How many prompts came from one source. params: source
select count(*) from prompts where source = ?
