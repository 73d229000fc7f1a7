"""Prompt files and records: the file readers, and the validation of one record.

Files: JSON lines (`.jsonl`, `.ndjson`, and `.json` as datasets' `Dataset.to_json` writes it),
a `.json` file holding one top-level array (read whole; a record's "line" is its position),
any of these gzipped (`.gz`), CSV with a header row (`.csv`, `.csv.gz`; a record's line is
the line its row starts on) and Parquet. Record formats (flywheel `prompt`, OpenAI
`messages`, ShareGPT `conversations`, Alpaca `instruction`) are mapped to chat turns by
`pool.formats`; then the turns must be an optional system turn, then user/assistant
alternating, ending with the user (a final assistant turn was taken off as the reference
answer). A bad record (JSON, UTF-8, fields, roles, empty text, over `max_chars` characters)
becomes a `RecordProblem` with its line number and reason.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from queue import Full, Queue
from typing import IO, Any, Literal, TypeVar

from flywheel.errors import InputError
from flywheel.pool.formats import json_type, to_turns
from flywheel.pool.normalise import clean_content, normalise_text, prompt_id_of

T = TypeVar("T")
Split = Literal["pool", "eval"]
ROLES = ("system", "user", "assistant")
SUFFIX_FORMATS: tuple[tuple[tuple[str, ...], str], ...] = (
    ((".jsonl.gz", ".ndjson.gz"), "jsonl.gz"),
    ((".jsonl", ".ndjson"), "jsonl"),
    ((".json.gz",), "json.gz"),
    ((".json",), "json"),
    ((".csv.gz",), "csv.gz"),
    ((".csv",), "csv"),
    ((".parquet", ".pq"), "parquet"),
)
PARQUET_COLUMNS = (
    "prompt",
    "messages",
    "conversations",
    "instruction",
    "input",
    "output",
    "system",
    "category",
)
RECORD_EXAMPLE = (
    'a JSON object such as {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}'
)


class PromptFileError(InputError):
    """A prompt file that cannot be read at all: missing, unreadable, a folder, an unsupported
    format; or one with no valid record (`NoValidRecordError`)."""


@dataclass(frozen=True)
class RecordProblem:
    """A record skipped at ingest: its line (row, or position for in-memory records) and why."""

    line_no: int
    reason: str


@dataclass(frozen=True)
class RecordSource:
    """Where records come from. A file keys each occurrence by (file sha256, line); in-memory
    records by (sha256 of the record's canonical JSON, position)."""

    path: str
    file_sha256: str | None


@dataclass(frozen=True)
class Record:
    """A valid record, normalised."""

    line_no: int
    occurrence_sha256: str
    messages: list[dict[str, str]]
    prompt_id: str
    prompt_text: str
    category: str | None
    n_chars: int
    reference_answer: str | None = None  # a final assistant turn (or Alpaca `output`) taken off


def file_format(path: Path) -> str | None:
    """The format a file's name says: jsonl, jsonl.gz, json, json.gz, csv, csv.gz, parquet."""
    name = path.name.lower()
    for suffixes, kind in SUFFIX_FORMATS:
        if name.endswith(suffixes):
            return kind
    return None


def check_file(path: Path) -> Path:
    if not path.exists():
        raise PromptFileError(f"prompt file {str(path)!r} does not exist. Fix: check the path.")
    if not path.is_file():
        raise PromptFileError(f"{str(path)!r} is not a file. Fix: pass one prompt file.")
    if file_format(path) is None:
        suffix = "".join(path.suffixes[-2:]).lower()
        raise PromptFileError(
            f"prompt file {str(path)!r} has the unsupported extension {suffix or '(none)'!r}. "
            "Fix: use .jsonl (one JSON object per line; .jsonl.gz too), .json (JSON lines or "
            "one array), .csv or .parquet, with a `prompt`, `messages`, `conversations` or "
            "`instruction` field and optionally `category`."
        )
    return path


def read_records(path: Path, batch_size: int) -> Iterator[tuple[int, Any]]:
    """(line or row number, record or RecordProblem) of every record of a checked file."""
    kind = file_format(path)
    if kind == "parquet":
        return read_parquet(path, batch_size)
    if kind in ("csv", "csv.gz"):
        return read_csv(path)
    if kind in ("json", "json.gz") and _starts_with_array(path):
        return read_json_array(path)
    return read_jsonl(path)


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _starts_with_array(path: Path) -> bool:
    """True when the first non-blank character of the file is `[` (one JSON array)."""
    with _open_binary(path) as handle:
        head = handle.read(4096)
    return head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n").startswith(b"[")


def read_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """(position from 1, element) of a file holding one JSON array (read whole)."""
    try:
        with _open_binary(path) as handle:
            data = json.loads(handle.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, OSError, EOFError) as e:
        raise PromptFileError(
            f"prompt file {str(path)!r} starts a JSON array but is not valid JSON ({e}). Fix: "
            "repair it, or write one JSON object per line (JSON lines)."
        ) from e
    yield from enumerate(data, start=1)


def read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """(line the row starts on, {column: cell}) of a CSV file with a header; empty cells are
    absent; a cell holding JSON turns (`messages`, `conversations`) is parsed later."""
    with _open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        reader = csv.DictReader(text)
        try:
            next_line = 2  # the header is line 1
            for row in reader:
                start, next_line = next_line, reader.line_num + 1  # a quoted cell spans lines
                cells = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
                if cells:
                    yield start, cells
        except UnicodeDecodeError as e:
            raise PromptFileError(
                f"CSV file {str(path)!r} is not UTF-8 ({e.reason}). Fix: save it as UTF-8."
            ) from e
        except csv.Error as e:
            raise PromptFileError(
                f"CSV file {str(path)!r} line {reader.line_num}: {e}. Fix: quote cells that "
                "hold commas, quotes or newlines."
            ) from e


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise PromptFileError(
            f"prompt file {str(path)!r} cannot be read ({e.strerror or e}). Fix: check that it "
            "is readable by this user, or copy it somewhere that is."
        ) from e
    return digest.hexdigest()


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object or RecordProblem) for every non-blank line."""
    with _open_binary(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise PromptFileError(
                    f"prompt file {str(path)!r} is UTF-16 encoded. Fix: convert it to UTF-8, "
                    f"e.g. `iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}.utf8.jsonl`."
                )
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not raw.strip():
                continue
            yield line_no, _parse_json_line(raw)


def _parse_json_line(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return RecordProblem(
            0,
            f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1}); the file may be "
            "in another encoding such as Latin-1: save it as UTF-8",
        )
    try:
        return json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as e:
        return RecordProblem(0, f"bad JSON: {e.msg} (column {e.colno})")


def read_parquet(path: Path, batch_size: int) -> Iterator[tuple[int, Any]]:
    """(row number from 1, record or RecordProblem) for every row of a Parquet file."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise PromptFileError(f"{str(path)!r} is not a readable Parquet file: {e}") from e
    columns = [c for c in PARQUET_COLUMNS if c in parquet.schema_arrow.names]
    if not set(columns) & {"prompt", "messages", "conversations", "instruction"}:
        raise PromptFileError(
            f"Parquet file {str(path)!r} has no `prompt`, `messages`, `conversations` or "
            f"`instruction` column (columns: {', '.join(parquet.schema_arrow.names)}). Fix: "
            "name the prompt column `prompt` (text) or `messages` (chat turns)."
        )
    row_no = 0
    for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
        for row in _parquet_rows(batch):
            row_no += 1
            yield row_no, row


def _parquet_rows(batch: Any) -> list[Any]:
    try:
        return batch.to_pylist()
    except UnicodeDecodeError:  # one bad string spoils the batch: convert row by row
        rows: list[Any] = []
        for i in range(batch.num_rows):
            try:
                rows.extend(batch.slice(i, 1).to_pylist())
            except UnicodeDecodeError:
                rows.append(RecordProblem(0, "invalid UTF-8 in a text column"))
        return rows


def parse_messages(obj: Any) -> tuple[list[dict[str, str]], str | None] | str:
    """The cleaned chat turns of one record (any format of `pool.formats`) and its reference
    answer (a final assistant turn taken off), or the reason it is malformed."""
    if not isinstance(obj, dict):
        return f"not a JSON object (got {json_type(obj)})"
    read = to_turns(obj)
    if isinstance(read, str):
        return read
    if read.field == "prompt" and isinstance(obj["prompt"], str):
        content = clean_content(obj["prompt"])
        if not content:
            return "empty text: `prompt` is empty"
        if not _encodable(content):
            return "invalid UTF-8: `prompt` holds a lone surrogate (an escape like \\ud800)"
        return [{"role": "user", "content": content}], None
    messages: list[dict[str, str]] = []
    for number, turn in enumerate(read.turns, start=1):
        content = clean_content(turn["content"])
        if not content:
            return f"empty text: turn {number} ({turn['role']}) has no content"
        if not _encodable(content):
            return f"invalid UTF-8: turn {number} holds a lone surrogate (an escape like \\ud800)"
        messages.append({"role": turn["role"], "content": content})
    problem = _role_problem([m["role"] for m in messages])
    if problem is not None:
        return problem
    reference = read.reference_answer
    if reference is not None and not _encodable(reference):
        return "invalid UTF-8: the final assistant turn holds a lone surrogate"
    return messages, (clean_content(reference) or None) if reference is not None else None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _role_problem(roles: list[str]) -> str | None:
    """Why the role order is wrong: an optional system turn, then user/assistant alternating
    from the user, ending with the user; None when it is right."""
    offset = 1 if roles[0] == "system" else 0
    body = roles[offset:]
    if not body:
        return "wrong roles: only a system turn; the last turn must be from the user"
    for i, role in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            return (
                f"wrong roles: turn {i + offset + 1} is {role!r} where {expected!r} was expected "
                "(an optional system turn, then user and assistant alternating, ending with user)"
            )
    if body[-1] != "user":
        return f"wrong roles: the last turn is from {body[-1]!r}; it must be from the user"
    return None


def _category(value: Any) -> str | None | tuple[str]:
    """A record's category as text (an integer as its decimal text); (reason,) if refused."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and _encodable(value):
        return value.strip() or None
    got = json_type(value) if not isinstance(value, str) else "invalid UTF-8"
    return (f"`category` must be a string or an integer (got {got})",)


def validate_record(
    line_no: int, obj: Any, max_chars: int, occurrence_sha256: str
) -> Record | RecordProblem:
    """A normalised record, or the problem that makes it malformed."""
    if isinstance(obj, RecordProblem):
        return RecordProblem(line_no, obj.reason)
    parsed = parse_messages(obj)
    if isinstance(parsed, str):
        return RecordProblem(line_no, parsed)
    messages, reference_answer = parsed
    category = _category(obj.get("category"))
    if isinstance(category, tuple):
        return RecordProblem(line_no, category[0])
    n_chars = sum(len(m["content"]) for m in messages)
    if n_chars > max_chars:
        return RecordProblem(
            line_no, f"too long: {n_chars:,} characters (prompts.max_chars is {max_chars:,})"
        )
    return Record(
        line_no=line_no,
        occurrence_sha256=occurrence_sha256,
        messages=messages,
        prompt_id=prompt_id_of(messages),
        prompt_text=normalise_text(messages[-1]["content"]),
        category=category,
        n_chars=n_chars,
        reference_answer=reference_answer,
    )


def plain_messages_json(obj: Any) -> str | None:
    """`json.dumps(obj, sort_keys=True, ensure_ascii=False)` of `{"messages": [{"role": str,
    "content": str}, ...]}` written directly (the logs' openings, a million at a time); None
    for any other shape."""
    if type(obj) is not dict or obj.keys() != {"messages"} or type(obj["messages"]) is not list:
        return None
    turns = []
    for message in obj["messages"]:
        if type(message) is not dict or message.keys() != {"role", "content"}:
            return None
        if type(message["role"]) is not str or type(message["content"]) is not str:
            return None
        content, role = encode_basestring(message["content"]), encode_basestring(message["role"])
        turns.append(f'{{"content": {content}, "role": {role}}}')
    return '{"messages": [' + ", ".join(turns) + "]}"


def record_sha256(obj: Any) -> str:
    text = plain_messages_json(obj)
    if text is None:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """The items of `items`, produced by a background thread at most `depth` ahead. An error
    in the producer is raised here; stopping early stops the producer."""
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as e:  # handed to the consumer, which raises it
            put((False, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator releases its open file here, in its own thread

    thread = threading.Thread(target=produce, name="prompt-reader", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = queue.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()
