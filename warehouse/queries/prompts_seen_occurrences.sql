-- the records of a batch (registered as _batch_occurrences) whose occurrence is stored already:
-- one row per (file_sha256, line_no) seen before, so that adding a file twice adds nothing
with batch as (
    select file_sha256, line_no from _batch_occurrences
), seen as (
    select b.file_sha256, b.line_no
    from batch as b
    join prompt_occurrences as o
        on o.file_sha256 = b.file_sha256 and o.line_no = b.line_no
)
select * from seen
