-- pool prompts that a user adds again as eval prompts (ids registered as _moved_ids) join the
-- eval split, unless a round already battled them as training prompts
update prompts
set split = 'eval', status = 'active', duplicate_of = null, contaminated_by = null
where prompt_id in (select prompt_id from _moved_ids)
    and split = 'pool'
    and slice_id is null
