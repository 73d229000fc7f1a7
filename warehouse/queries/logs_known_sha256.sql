-- whether a log file's content (the sha256 of its complete part) was read before, under any path
select count(*) > 0 as known
from log_files
where file_sha256 = ?
