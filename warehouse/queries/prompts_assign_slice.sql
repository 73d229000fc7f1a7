-- the drawn prompts (registered as _drawn_ids) become slice D_i; parameter: slice_id
update prompts
set slice_id = ?
where prompt_id in (select prompt_id from _drawn_ids)
    and split = 'pool'
    and status = 'active'
    and slice_id is null
