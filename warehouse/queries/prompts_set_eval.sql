-- the drawn eval prompts (registered as _drawn_ids) move to the eval split, once and for all
update prompts
set split = 'eval'
where prompt_id in (select prompt_id from _drawn_ids)
    and split = 'pool'
    and status = 'active'
    and slice_id is null
