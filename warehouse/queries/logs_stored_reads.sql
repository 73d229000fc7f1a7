-- the recorded reads of one log file path (one row per batch read), longest first
select file_sha256, bytes_read, lines_read
from log_files
where path = ?
order by bytes_read desc
