-- one page of the active prompts of a split, in prompt_id order after a given id (keyset paging)
-- parameters: split, last prompt_id of the previous page ('' for the first), page size
with active as (
    select prompt_id, messages
    from prompts
    where split = ? and status = 'active' and prompt_id > ?
), page as (
    select * from active order by prompt_id limit ?
)
select * from page
