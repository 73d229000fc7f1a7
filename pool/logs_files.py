"""Log files read once and read on: complete records only, from where the last read stopped.

A log file is JSON lines (`.jsonl`, `.ndjson`, `.json` written as lines; gzipped too) or one
JSON array (`.json`). Only complete records are read: a line is complete when its newline has
been written, so a file still being written is read up to its last newline and its last,
half-written line is left for the next read.

Every read of a file is recorded in `log_files` batch by batch: the sha256 of the file's bytes
from its start to the end of the batch's last record, with that offset and line. Before
reading, the file's prefixes at the offsets recorded for its path are hashed: the longest one
whose hash matches is where this read starts (the file grew: only what is new is read); when
the hash of everything complete is recorded already, nothing is new (the file, or a copy of it,
was read). A file whose recorded prefix changed is read from its start again; its records are
keyed by conversation, so what was stored is not stored twice. A JSON array is read whole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flywheel.errors import InputError

SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
READ_BLOCK = 1 << 20


class LogFileError(InputError):
    """A log file that cannot be read: missing, a folder, an unsupported name, not JSON."""


@dataclass(frozen=True)
class StoredRead:
    """A recorded read of a log file: the sha256 of its first `bytes_read` bytes."""

    file_sha256: str
    bytes_read: int
    lines_read: int


@dataclass
class ReadPlan:
    """Where a read starts (offset, lines before it, the hash of the bytes before it), where
    the complete records end, and whether anything is new."""

    path: Path
    start: int
    start_line: int
    digest: Any  # hashlib sha256 of bytes [0, start)
    end: int  # just after the last newline (or the whole file, for a JSON array)
    end_sha256: str
    is_array: bool
    has_partial_line: bool = False  # the last line has no newline yet (still being written)

    @property
    def nothing_new(self) -> bool:
        return self.start >= self.end


def check_log_file(path: Path) -> Path:
    if not path.exists():
        raise LogFileError(f"log file {str(path)!r} does not exist. Fix: check the path.")
    if not path.is_file():
        raise LogFileError(f"{str(path)!r} is not a file. Fix: pass log files (or a glob).")
    if not path.name.lower().endswith(SUFFIXES):
        raise LogFileError(
            f"log file {str(path)!r} has an unsupported name. Fix: use .jsonl (one JSON record "
            "per line; .ndjson, .jsonl.gz too) or .json (JSON lines or one array)."
        )
    return path


def open_log(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _is_array(path: Path) -> bool:
    with open_log(path) as handle:
        head = handle.read(4096)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def plan_read(path: Path, stored: list[StoredRead], known_sha256: Container[str]) -> ReadPlan:
    """Hash the file's complete part, noting the longest recorded prefix that still matches
    (`stored`: this path's recorded reads); `known_sha256`: every recorded file hash."""
    is_array = path.name.lower().endswith((".json", ".json.gz")) and _is_array(path)
    offsets = {s.bytes_read: s for s in stored}
    digest, position, lines = hashlib.sha256(), 0, 0
    start, start_line, start_digest = 0, 0, hashlib.sha256()
    end, end_lines, end_digest = 0, 0, hashlib.sha256()
    partial = False
    try:
        with open_log(path) as handle:
            for line in handle:
                if not line.endswith(b"\n") and not is_array:
                    partial = bool(line.strip())  # still being written: left for the next read
                    break
                digest.update(line)
                position += len(line)
                lines += 1
                end, end_lines, end_digest = position, lines, digest.copy()
                known = offsets.get(position)
                if known is not None and known.file_sha256 == digest.hexdigest():
                    start, start_line, start_digest = position, lines, digest.copy()
    except (OSError, EOFError) as e:
        raise LogFileError(
            f"log file {str(path)!r} cannot be read ({e}). Fix: check that it is readable "
            "(a gzip file still being written is read once it is complete)."
        ) from e
    end_sha256 = end_digest.hexdigest()
    if end_sha256 in known_sha256 and end > 0:
        start, start_line, start_digest = end, end_lines, end_digest
    return ReadPlan(path, start, start_line, start_digest, end, end_sha256, is_array, partial)


def _parse_line(raw: bytes) -> Any:
    from flywheel.pool.records import RecordProblem

    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        return RecordProblem(0, "invalid UTF-8: save the log as UTF-8")
    except json.JSONDecodeError as e:
        return RecordProblem(0, f"bad JSON: {e.msg} (column {e.colno})")


@dataclass(frozen=True)
class LogLine:
    """One record read: its line (position in a JSON array), the parsed JSON (or a
    RecordProblem), and the file offset and the hash of the file up to the end of its line."""

    line_no: int
    record: Any
    end_offset: int


def read_lines(plan: ReadPlan) -> Iterator[LogLine]:
    """The complete records after `plan.start`; `plan.digest` follows them (read
    `plan.digest.hexdigest()` after a record to get the hash of the file up to its end)."""
    if plan.is_array:
        yield from _read_array(plan)
        return
    with open_log(plan.path) as handle:
        _skip(handle, plan.start)
        position, line_no = plan.start, plan.start_line
        for raw in handle:
            if position >= plan.end:
                return
            plan.digest.update(raw)
            position += len(raw)
            line_no += 1
            if raw.strip():
                yield LogLine(line_no, _parse_line(raw), position)


def _skip(handle: IO[bytes], n_bytes: int) -> None:
    """Move past the first `n_bytes` (a seek in a plain file; read through in a gzip file)."""
    if not isinstance(handle, gzip.GzipFile):
        handle.seek(n_bytes)
        return
    while n_bytes > 0:
        block = handle.read(min(READ_BLOCK, n_bytes))
        if not block:
            return
        n_bytes -= len(block)


def _read_array(plan: ReadPlan) -> Iterator[LogLine]:
    with open_log(plan.path) as handle:
        data = handle.read()
    try:
        items = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LogFileError(
            f"log file {str(plan.path)!r} starts a JSON array but is not valid JSON ({e}); it "
            "may still be being written. Fix: add it when it is complete, or write JSON lines."
        ) from e
    plan.digest.update(data)
    for position, item in enumerate(items if isinstance(items, list) else [items], start=1):
        yield LogLine(position, item, len(data))
