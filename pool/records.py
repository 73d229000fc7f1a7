"""Prompt files and records: JSONL and Parquet readers, and the validation of one record.

A record holds `prompt` (text, or a list of chat turns) or `messages` (chat turns: an optional
system turn, then user/assistant alternating, ending with the user), optionally `category`; a
bad line (JSON, UTF-8, fields, roles, empty text, over `max_chars` characters) becomes a
`RecordProblem` with its line number and reason.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Any, Literal, TypeVar

from flywheel.errors import InputError
from flywheel.pool.normalise import clean_content, normalise_text, prompt_id_of

T = TypeVar("T")
Split = Literal["pool", "eval"]
ROLES = ("system", "user", "assistant")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
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


def check_file(path: Path) -> Path:
    suffix = path.suffix.lower()
    if not path.exists():
        raise PromptFileError(f"prompt file {str(path)!r} does not exist. Fix: check the path.")
    if not path.is_file():
        raise PromptFileError(f"{str(path)!r} is not a file. Fix: pass one JSONL or Parquet file.")
    if suffix not in JSONL_SUFFIXES + PARQUET_SUFFIXES:
        raise PromptFileError(
            f"prompt file {str(path)!r} has the unsupported extension {suffix or '(none)'!r}. "
            "Fix: use .jsonl (one JSON object per line) or .parquet, with a `prompt` or "
            "`messages` field and optionally `category`."
        )
    return path


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
    with path.open("rb") as handle:
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
    columns = [c for c in ("messages", "prompt", "category") if c in parquet.schema_arrow.names]
    if "messages" not in columns and "prompt" not in columns:
        raise PromptFileError(
            f"Parquet file {str(path)!r} has no `prompt` or `messages` column (columns: "
            f"{', '.join(parquet.schema_arrow.names)}). Fix: name the prompt column `prompt` "
            "(text) or `messages` (chat turns)."
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


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def parse_messages(obj: Any) -> list[dict[str, str]] | str:
    """The cleaned chat turns of one record, or the reason it is malformed."""
    if not isinstance(obj, dict):
        return f"not a JSON object (got {_json_type(obj)})"
    has_messages = obj.get("messages") is not None
    has_prompt = obj.get("prompt") is not None
    if has_messages and has_prompt:
        return "has both `messages` and `prompt`; keep one"
    if not has_messages and not has_prompt:
        return "missing field: needs `prompt` (text) or `messages` (chat turns)"
    if has_prompt and isinstance(obj["prompt"], str):
        content = clean_content(obj["prompt"])
        if not content:
            return "empty text: `prompt` is empty"
        if not _encodable(content):
            return "invalid UTF-8: `prompt` holds a lone surrogate (an escape like \\ud800)"
        return [{"role": "user", "content": content}]
    name = "messages" if has_messages else "prompt"
    turns = obj[name]
    if not isinstance(turns, list) or not turns:
        got = "an empty array" if turns == [] else _json_type(turns)
        expected = "text or a non-empty array" if name == "prompt" else "a non-empty array"
        return f"`{name}` must be {expected} of {{role, content}} turns (got {got})"
    messages: list[dict[str, str]] = []
    for number, turn in enumerate(turns, start=1):
        if not (
            isinstance(turn, dict)
            and isinstance(turn.get("role"), str)
            and isinstance(turn.get("content"), str)
        ):
            return f"`{name}` turn {number} needs a string `role` and a string `content`"
        if turn["role"] not in ROLES:
            return f"wrong roles: turn {number} has role {turn['role']!r}; roles are {', '.join(ROLES)}"
        content = clean_content(turn["content"])
        if not content:
            return f"empty text: turn {number} ({turn['role']}) has no content"
        if not _encodable(content):
            return f"invalid UTF-8: turn {number} holds a lone surrogate (an escape like \\ud800)"
        messages.append({"role": turn["role"], "content": content})
    problem = _role_problem([m["role"] for m in messages])
    return problem or messages


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


def validate_record(
    line_no: int, obj: Any, max_chars: int, occurrence_sha256: str
) -> Record | RecordProblem:
    """A normalised record, or the problem that makes it malformed."""
    if isinstance(obj, RecordProblem):
        return RecordProblem(line_no, obj.reason)
    messages = parse_messages(obj)
    if isinstance(messages, str):
        return RecordProblem(line_no, messages)
    category = obj.get("category")
    if category is not None and not (isinstance(category, str) and _encodable(category)):
        got = _json_type(category) if not isinstance(category, str) else "invalid UTF-8"
        return RecordProblem(line_no, f"`category` must be a string (got {got})")
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
        category=(category.strip() or None) if category else None,
        n_chars=n_chars,
    )


def record_sha256(obj: Any) -> str:
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
