"""Step 1 of the round: the prompt pool, and the fresh slice D_i each round battles on.

Ingest (`add_prompt_file`, `add_prompt_records`) streams records in batches of
`prompts.batch_size` (the next batch is parsed in a background thread meanwhile); each batch
is deduplicated, decontaminated and written in short warehouse bursts, so memory does not
grow with the file and a crash loses at most the batch in flight (adding the file again
resumes: stored occurrences are skipped).

1. validate   a record holds `prompt` (text, or a list of chat turns) or `messages` (chat
              turns: an optional system turn, then user/assistant alternating, ending with the
              user), optionally `category`; a bad line (JSON, UTF-8, fields, roles, empty
              text, over `max_chars` characters) is skipped with its line number and reason.
2. exact      id = sha256 of the normalised messages (NFC, stripped, whitespace collapsed;
              case kept). A known id adds only an occurrence (file sha256 + line number), so
              adding the same file twice adds nothing and every copy stays traceable.
3. decontam.  a pool prompt that shares a `contamination_ngram`-word n-gram with an eval
              prompt, or whose word-shingle Jaccard similarity to one is above
              `near_duplicate_threshold`, is stored with status `contaminated` and
              `contaminated_by` = that eval prompt; it never becomes training data. (A
              verbatim copy of an eval prompt is the eval row itself: counted as contaminated.)
4. near-dup   MinHash LSH over word shingles finds candidates among the kept (active) prompts
              of the same split, stored or earlier in the batch; a candidate whose exact
              shingle Jaccard is above the threshold absorbs the new prompt (status
              `near_duplicate`, `duplicate_of` = the kept prompt). The first prompt seen is kept.
5. write      prompts and occurrences in one transaction (`insert ... where not exists`).

Similarity is measured on the text of every turn: lower-cased words (letters and digits;
symbols such as + - = count as words; other punctuation is dropped), `shingle_words` words
per shingle. LSH uses `num_perm` MinHash permutations in bands sized so that a pair exactly
at the threshold becomes a candidate with probability >= 0.99 (21 bands of 6 rows for 0.8 and
128); candidates are then checked exactly. Not covered: text without spaces between words
(Chinese, Japanese) compares as a few long words, so its near-duplicates are missed.

The LSH index is rebuilt from the stored prompts when an ingest first needs it (so a change
of shingle size, permutations or threshold in the config applies to the whole pool), then
grows with every batch: ~12 bytes per band per kept prompt, ~80 us per stored prompt to build.

The eval set (`ensure_eval_split`) is drawn once, stratified by category and seeded, from
active pool prompts no round has battled, unless a user brought eval prompts with
`--eval`: then those are the eval set, whatever their number, and nothing is drawn. After a
draw or an eval add, the whole pool is decontaminated against the eval set. Slices
(`draw_round_slice`) take the next `slice_size` unused active pool prompts in a seeded order.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from queue import Full, Queue
from typing import Any, Literal, TypeVar

import duckdb
import numpy as np
import pandas as pd

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.tasks.dedup import (
    BandIndex,
    Candidates,
    Features,
    LshParams,
    NgramIndex,
    clean_content,
    dedup_text,
    featurize,
    jaccard,
    lsh_params,
    messages_json,
    normalise_text,
    prompt_id_of,
    self_candidates,
    shingle_sets,
)
from flywheel.warehouse.store import connect_warehouse, insert_new, now_utc, read_query, transaction

Split = Literal["pool", "eval"]
T = TypeVar("T")
ROLES = ("system", "user", "assistant")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_PROBLEMS_KEPT = 1000  # the report keeps the first ones; the counts are always exact
MAX_BUCKET_ITEMS = 64  # items read from one LSH bucket per query band
MAX_CANDIDATES_PER_PROMPT = 16  # candidates verified per new prompt, most shared bands first
ADD_HINT = (
    "add more with `flywheel prompts add FILE` (JSONL or Parquet; one record per line with a "
    '`prompt` or `messages` field, e.g. {"prompt": "...", "category": "..."})'
)


RECORD_EXAMPLE = (
    'a JSON object such as {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}'
)


class PromptFileError(InputError):
    """A prompt file that cannot be read at all: missing, unreadable, a folder, an unsupported
    format; or one with no valid record (`NoValidRecordError`)."""


class NoValidRecordError(PromptFileError):
    """A prompt file read to the end without one valid record (empty, or every line bad);
    nothing was stored. `report` holds the counts and the problems."""

    def __init__(self, message: str, report: IngestReport) -> None:
        super().__init__(message)
        self.report = report


class PoolExhaustedError(RuntimeError):
    """The pool cannot fill the eval set or the next slice; the message says what is missing."""


@dataclass(frozen=True)
class RecordProblem:
    """A record skipped at ingest: its line (row, or position for in-memory records) and why."""

    line_no: int
    reason: str


@dataclass
class IngestReport:
    """What one ingest did. Every record read lands in exactly one count:
    n_records = n_added + n_exact_duplicates + n_near_duplicates + n_contaminated
    + n_malformed + n_already_ingested."""

    source: str
    n_records: int = 0
    n_added: int = 0
    n_exact_duplicates: int = 0
    n_near_duplicates: int = 0
    n_contaminated: int = 0
    n_malformed: int = 0
    problems: list[RecordProblem] = field(default_factory=list)  # the first MAX_PROBLEMS_KEPT
    split: Split = "pool"
    path: str | None = None
    n_already_ingested: int = 0  # records of this file (same sha256 and line) stored before
    n_pool_decontaminated: int = 0  # stored pool prompts marked contaminated by new eval prompts
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def add_note(self, note: str) -> None:
        if len(self.notes) < MAX_PROBLEMS_KEPT:
            self.notes.append(note)

    def add_problem(self, line_no: int, reason: str) -> None:
        self.n_malformed += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(RecordProblem(line_no, reason))

    def summary(self, max_problems: int = 10) -> str:
        """A paragraph for people: how many of each, then the first problems with line numbers."""
        where = self.path or "records"
        target = "the held-out eval set" if self.split == "eval" else "the pool"
        lines = [
            f"{where} -> {target} (source {self.source!r}): {self.n_records:,} records read; "
            f"{self.n_added:,} added, {self.n_exact_duplicates:,} exact duplicates, "
            f"{self.n_near_duplicates:,} near-duplicates, {self.n_contaminated:,} contaminated "
            f"(overlap an eval prompt), {self.n_malformed:,} malformed (skipped), "
            f"{self.n_already_ingested:,} already ingested; {self.wall_s:.1f} s."
        ]
        if self.n_records == 0:
            lines.append(
                "The input is empty: no records. Each line should be a JSON object such as "
                '{"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}.'
            )
        elif (
            self.n_already_ingested and self.n_already_ingested + self.n_malformed == self.n_records
        ):
            lines.append("Nothing new: every valid record was added before.")
        if self.n_pool_decontaminated:
            lines.append(
                f"{self.n_pool_decontaminated:,} pool prompts overlap the eval set and were "
                "marked contaminated."
            )
        lines.extend(self.notes)
        if self.problems:
            shown = self.problems[:max_problems]
            lines.append(f"Skipped records (first {len(shown)} of {self.n_malformed:,}):")
            lines.extend(f"  line {p.line_no}: {p.reason}" for p in shown)
            lines.append(
                "Fix them and add the input again: the valid records are kept and none is "
                "added twice."
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------- public API


def add_prompt_file(
    config: Config, path: str | Path, source: str | None = None, split: Split = "pool"
) -> IngestReport:
    """Ingest a JSONL or Parquet file into the pool (or, with split="eval", the eval set)."""
    file_path = _check_file(Path(path))
    file_sha256 = _file_sha256(file_path)
    if file_path.suffix.lower() in PARQUET_SUFFIXES:
        numbered = _read_parquet(file_path, config.prompts.batch_size)
    else:
        numbered = _read_jsonl(file_path)
    report = IngestReport(source=source or file_path.stem, split=split, path=str(path))
    container = _Container(str(file_path.resolve()), file_sha256)
    _Ingest(config, report, container).run(numbered)
    _require_a_valid_record(report)
    return report


def add_prompt_records(
    config: Config, records: Iterable[dict[str, Any]], source: str, split: Split = "pool"
) -> IngestReport:
    """Ingest in-memory records ({"prompt": ...} or {"messages": [...]}, optional "category")
    through the same path as a file; record i (from 1) plays the part of line i."""
    report = IngestReport(source=source, split=split)
    container = _Container(f"<records:{source}>", file_sha256=None)
    return _Ingest(config, report, container).run(enumerate(records, start=1))


def ensure_eval_split(config: Config) -> int:
    """The size of the held-out eval set, drawn now if there is none yet.

    Once any eval prompt exists (drawn earlier, or brought with `prompts add --eval`), the set
    is fixed and nothing more is drawn, whatever `eval_size` says; add more with --eval. A
    draw takes `eval_size` active pool prompts that no round has battled, stratified by
    category with proportional quotas, in a seeded order; the rest of the pool is then
    decontaminated against it, and both land in one transaction.
    """
    existing = eval_prompt_ids(config)
    if existing:
        return len(existing)
    size = config.prompts.eval_size
    with _connect(config) as con:
        n_available = _pool_available(con)
        if n_available < size:
            raise PoolExhaustedError(
                f"the held-out eval set needs {size:,} prompts (prompts.eval_size) but the pool "
                f"has only {n_available:,} active prompts no round has used: "
                f"{size - n_available:,} missing. Fix: {ADD_HINT}; or bring your own eval set "
                "with `flywheel prompts add FILE --eval`; or lower prompts.eval_size."
            )
        drawn = con.execute(
            read_query("prompts_draw_eval"), [str(config.prompts.seed), size, size]
        ).df()
    params = _lsh_params(config)
    eval_index = _PromptIndex.empty("eval")
    _add_to_index(eval_index, params, config, list(drawn["prompt_id"]), _texts(drawn["messages"]))
    overlaps = _find_pool_overlaps(config, params, eval_index, skip=set(drawn["prompt_id"]))
    with _connect(config) as con, transaction(con):
        if con.execute(read_query("prompts_eval_ids")).fetchall():
            return len(eval_prompt_ids_in(con))  # another process drew it meanwhile
        with _registered(con, "_drawn_ids", drawn[["prompt_id"]]):
            con.execute(read_query("prompts_set_eval"))
        _mark_contaminated(con, overlaps)
        return len(eval_prompt_ids_in(con))


def draw_round_slice(config: Config, round_id: int) -> list[str]:
    """The prompt ids of slice D_round_id, assigned on the first call and returned again after.

    The eval set is drawn first when there is none (it must never become training data). A
    slice takes the next `slice_size` active pool prompts no slice holds, in a seeded order;
    slices are disjoint. A later call returns the same ids, less any that an eval prompt
    added since has contaminated. When the pool cannot fill the slice, nothing is assigned
    and `PoolExhaustedError` says how many prompts are missing.
    """
    ensure_eval_split(config)
    seed = str(config.prompts.seed)
    size = config.prompts.slice_size
    with _connect(config) as con, transaction(con):
        assigned = con.execute(read_query("prompts_slice_ids"), [seed, round_id]).fetchall()
        if assigned:
            return [prompt_id for prompt_id, status in assigned if status == "active"]
        n_available = _pool_available(con)
        if n_available < size:
            raise PoolExhaustedError(
                f"round {round_id} needs {size:,} fresh prompts (prompts.slice_size) but the "
                f"pool has only {n_available:,} unused active prompts: {size - n_available:,} "
                f"missing. Fix: {ADD_HINT}; or lower prompts.slice_size."
            )
        drawn = con.execute(read_query("prompts_draw_slice"), [seed, size]).df()
        with _registered(con, "_drawn_ids", drawn):
            con.execute(read_query("prompts_assign_slice"), [round_id])
        return list(drawn["prompt_id"])


def eval_prompt_ids(config: Config) -> list[str]:
    """The held-out eval prompts (active, split eval), sorted by id."""
    with _connect(config) as con:
        return eval_prompt_ids_in(con)


def eval_prompt_ids_in(con: duckdb.DuckDBPyConnection) -> list[str]:
    """`eval_prompt_ids` on an open connection."""
    return [prompt_id for (prompt_id,) in con.execute(read_query("prompts_eval_ids")).fetchall()]


def prompt_stats(config: Config) -> dict[str, pd.DataFrame]:
    """Tables for `flywheel prompts stats`: totals, by source, by category, by split/slice/status."""
    names = {
        "summary": "prompts_stats_summary",
        "by source": "prompts_stats_by_source",
        "by category": "prompts_stats_by_category",
        "by split, slice and status": "prompts_stats_by_split",
    }
    with _connect(config) as con:
        return {title: con.execute(read_query(query)).df() for title, query in names.items()}


# ------------------------------------------------------------------- reading and validation


@dataclass(frozen=True)
class _Container:
    """Where records come from. A file keys each occurrence by (file sha256, line); in-memory
    records by (sha256 of the record's canonical JSON, position)."""

    path: str
    file_sha256: str | None


@dataclass(frozen=True)
class _Record:
    """A valid record, normalised."""

    line_no: int
    occurrence_sha256: str
    messages: list[dict[str, str]]
    prompt_id: str
    prompt_text: str
    category: str | None
    n_chars: int


def _check_file(path: Path) -> Path:
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


def _file_sha256(path: Path) -> str:
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


def _require_a_valid_record(report: IngestReport) -> None:
    """Raise NoValidRecordError for a file that was empty or whose every record was bad."""
    if report.n_malformed < report.n_records:
        return
    if report.n_records == 0:
        raise NoValidRecordError(
            f"prompt file {report.path!r} is empty: no records, nothing added. Fix: write one "
            f"record per line, each {RECORD_EXAMPLE}.",
            report,
        )
    first = report.problems[0]
    raise NoValidRecordError(
        f"prompt file {report.path!r} has no valid record: all {report.n_records:,} are "
        f"malformed, nothing added; the first is line {first.line_no}: {first.reason}.\n"
        f"Fix: make each line {RECORD_EXAMPLE}, then add the file again.",
        report,
    )


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
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


def _read_parquet(path: Path, batch_size: int) -> Iterator[tuple[int, Any]]:
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
) -> _Record | RecordProblem:
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
    return _Record(
        line_no=line_no,
        occurrence_sha256=occurrence_sha256,
        messages=messages,
        prompt_id=prompt_id_of(messages),
        prompt_text=normalise_text(messages[-1]["content"]),
        category=(category.strip() or None) if category else None,
        n_chars=n_chars,
    )


def _record_sha256(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


# ------------------------------------------------------------------------------ the ingest


@dataclass
class _PromptIndex:
    """The kept prompts of a split that new ones are compared with. Pool: LSH buckets only
    (shingle sets are read back from the warehouse for candidates). Eval (small): also the
    long n-grams and shingle sets, for the contamination checks."""

    ids: list[str]
    bands: BandIndex
    ngrams: NgramIndex | None
    shingles: list[set[int]] | None

    @classmethod
    def empty(cls, split: Split) -> _PromptIndex:
        if split == "eval":
            return cls([], BandIndex(), NgramIndex(), [])
        return cls([], BandIndex(), None, None)

    def add(self, ids: Sequence[str], features: Features, docs: np.ndarray) -> None:
        """Index the documents `docs` of a featurized batch under `ids` (one per doc)."""
        if len(docs) == 0:
            return
        items = np.arange(len(self.ids), len(self.ids) + len(docs))
        self.bands.add(features.band_keys[docs], items)
        if self.ngrams is not None:
            position = np.full(len(features.offsets) - 1, -1, dtype=np.int64)
            position[docs] = items
            owners = position[features.ngram_doc]
            self.ngrams.add(features.ngrams[owners >= 0], owners[owners >= 0])
        if self.shingles is not None:
            self.shingles.extend(features.shingle_set(int(d)) for d in docs)
        self.ids.extend(ids)


def _lsh_params(config: Config) -> LshParams:
    p = config.prompts
    return lsh_params(p.near_duplicate_threshold, p.num_perm, p.shingle_words)


@contextmanager
def _connect(config: Config) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect_warehouse(config.warehouse) as con:
        yield con


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> Iterator[None]:
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)


def _pool_available(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(read_query("prompts_pool_available")).fetchone()[0])


def _texts(messages_json: Iterable[str]) -> list[str]:
    return [dedup_text(json.loads(m)) for m in messages_json]


def _iter_stored(config: Config, split: Split) -> Iterator[pd.DataFrame]:
    """Pages (prompt_id, messages) of the active prompts of a split, one short burst each."""
    last_id = ""
    while True:
        with _connect(config) as con:
            page = con.execute(
                read_query("prompts_index_page"), [split, last_id, config.prompts.batch_size]
            ).df()
        if page.empty:
            return
        yield page
        last_id = str(page["prompt_id"].iloc[-1])


def _add_to_index(
    index: _PromptIndex, params: LshParams, config: Config, ids: list[str], texts: list[str]
) -> None:
    ngram_words = config.prompts.contamination_ngram if index.ngrams is not None else None
    features = featurize(texts, params, ngram_words)
    index.add(ids, features, np.arange(len(ids)))


def _load_index(config: Config, params: LshParams, split: Split) -> _PromptIndex:
    """The index of a split's active prompts, rebuilt page by page from the warehouse. Eval
    indexes keep n-grams and shingle sets (they are small); pool indexes only LSH keys."""
    index = _PromptIndex.empty(split)
    for page in _iter_stored(config, split):
        _add_to_index(index, params, config, list(page["prompt_id"]), _texts(page["messages"]))
    return index


def _shingles_of(
    config: Config, params: LshParams, index: _PromptIndex, items: np.ndarray
) -> dict[int, set[int]]:
    """Shingle sets of indexed items: from memory, or re-read from the warehouse."""
    wanted = sorted(set(items.tolist()))
    if index.shingles is not None:
        return {item: index.shingles[item] for item in wanted}
    if not wanted:
        return {}
    ids = pd.DataFrame({"prompt_id": [index.ids[i] for i in wanted]})
    with _connect(config) as con, _registered(con, "_wanted_ids", ids):
        found = con.execute(read_query("prompts_messages_of")).df()
    texts = dict(zip(found["prompt_id"], _texts(found["messages"]), strict=True))
    sets = shingle_sets([texts[index.ids[i]] for i in wanted], params.shingle_words)
    return dict(zip(wanted, sets, strict=True))


def _eval_overlaps(
    features: Features, docs: np.ndarray, eval_index: _PromptIndex, params: LshParams
) -> dict[int, int]:
    """doc -> eval item it overlaps: a shared long n-gram, or shingle Jaccard > threshold."""
    if not eval_index.ids or len(docs) == 0:
        return {}
    assert eval_index.ngrams is not None and eval_index.shingles is not None  # an eval index
    wanted = np.zeros(len(features.offsets) - 1, dtype=bool)
    wanted[docs] = True
    in_docs = wanted[features.ngram_doc]
    found = eval_index.ngrams.first_owner(features.ngrams[in_docs], features.ngram_doc[in_docs])
    similar = eval_index.bands.query(
        features.band_keys[docs], MAX_BUCKET_ITEMS, MAX_CANDIDATES_PER_PROMPT
    )
    for local_doc, item in zip(similar.doc.tolist(), similar.item.tolist(), strict=True):
        doc = int(docs[local_doc])
        if doc in found:
            continue
        if jaccard(features.shingle_set(doc), eval_index.shingles[item]) > params.threshold:
            found[doc] = item
    return found


def _grouped(
    candidates: Candidates, to_doc: np.ndarray | None = None
) -> dict[int, list[tuple[int, int]]]:
    """doc -> [(n shared bands, item)], docs mapped through `to_doc` when given."""
    grouped: dict[int, list[tuple[int, int]]] = {}
    docs = candidates.doc if to_doc is None else to_doc[candidates.doc]
    for doc, item, shared in zip(
        docs.tolist(), candidates.item.tolist(), candidates.n_shared_bands.tolist(), strict=True
    ):
        grouped.setdefault(doc, []).append((shared, item))
    return grouped


def _prefetched(items: Iterator[T], depth: int = 1) -> Iterator[T]:
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


@dataclass(frozen=True)
class _Classified:
    """The new prompts of a batch, classified, and what is needed to index the kept ones."""

    rows: pd.DataFrame
    index: _PromptIndex | None = None
    features: Features | None = None

    def index_kept(self) -> None:
        """After the batch is written: its active prompts join the index of their split."""
        if self.index is None or self.features is None:
            return
        kept = np.flatnonzero(self.rows["status"].to_numpy() == "active")
        self.index.add(list(self.rows["prompt_id"].iloc[kept]), self.features, kept)


class _Ingest:
    """One ingest: batches of records through validation, dedup, decontamination and writes."""

    def __init__(self, config: Config, report: IngestReport, container: _Container) -> None:
        self.config = config
        self.report = report
        self.container = container
        self.split: Split = report.split
        self.params = _lsh_params(config)
        self._pool: _PromptIndex | None = None
        self._eval: _PromptIndex | None = None

    def pool_index(self) -> _PromptIndex:
        if self._pool is None:
            self._pool = _load_index(self.config, self.params, "pool")
        return self._pool

    def eval_index(self) -> _PromptIndex:
        if self._eval is None:
            self._eval = _load_index(self.config, self.params, "eval")
        return self._eval

    def run(self, numbered: Iterable[tuple[int, Any]]) -> IngestReport:
        """Every batch through dedup and writes; the next batch is read and validated in a
        background thread meanwhile (it overlaps the warehouse writes and numpy work)."""
        started = time.perf_counter()
        for valid in _prefetched(self._validated_batches(numbered)):
            if valid:
                self._ingest_batch(valid)
        if self.split == "eval":
            self._decontaminate_pool()
        self.report.wall_s = time.perf_counter() - started
        return self.report

    def _validated_batches(self, numbered: Iterable[tuple[int, Any]]) -> Iterator[list[_Record]]:
        """The valid records of each batch; problems and record counts go to the report."""
        iterator = iter(numbered)
        while chunk := list(islice(iterator, self.config.prompts.batch_size)):
            records = [self._validate(line_no, obj) for line_no, obj in chunk]
            self.report.n_records += len(records)
            for problem in records:
                if isinstance(problem, RecordProblem):
                    self.report.add_problem(problem.line_no, problem.reason)
            yield [r for r in records if isinstance(r, _Record)]

    def _validate(self, line_no: int, obj: Any) -> _Record | RecordProblem:
        if self.container.file_sha256 is not None:
            occurrence = self.container.file_sha256
        elif isinstance(obj, RecordProblem):
            occurrence = ""
        else:
            occurrence = _record_sha256(obj)
        return validate_record(line_no, obj, self.config.prompts.max_chars, occurrence)

    def _ingest_batch(self, records: list[_Record]) -> None:
        """Dedup, decontaminate and write one batch in short warehouse bursts."""
        occurrences = pd.DataFrame(
            {
                "file_sha256": [r.occurrence_sha256 for r in records],
                "line_no": [r.line_no for r in records],
            }
        )
        with _connect(self.config) as con:
            with _registered(con, "_batch_occurrences", occurrences):
                seen = set(con.execute(read_query("prompts_seen_occurrences")).fetchall())
            fresh = [r for r in records if (r.occurrence_sha256, r.line_no) not in seen]
            ids = pd.DataFrame({"prompt_id": [r.prompt_id for r in fresh]})
            with _registered(con, "_batch_ids", ids):
                existing = {
                    row[0]: row for row in con.execute(read_query("prompts_existing")).fetchall()
                }
        self.report.n_already_ingested += len(records) - len(fresh)
        new, moved = self._exact_duplicates(fresh, existing)
        classified = self._classify_new(new)
        self._write(fresh, classified.rows, moved)
        classified.index_kept()
        if moved:
            self._eval = None  # moved prompts joined the eval set: reload it when next needed

    def _exact_duplicates(
        self, fresh: list[_Record], existing: dict[str, tuple]
    ) -> tuple[list[_Record], list[str]]:
        """The first record of each unknown id, and (eval ingest) stored pool ids to move."""
        new: dict[str, _Record] = {}
        moved: list[str] = []
        for record in fresh:
            stored = existing.get(record.prompt_id)
            if stored is None:
                if record.prompt_id in new:
                    self.report.n_exact_duplicates += 1
                else:
                    new[record.prompt_id] = record
                continue
            _, split, slice_id, _ = stored
            if self.split == "pool" and split == "eval":
                self.report.n_contaminated += 1  # an eval prompt pasted into the pool verbatim
            elif self.split == "pool" or split == "eval" or record.prompt_id in moved:
                self.report.n_exact_duplicates += 1
            elif slice_id is None:
                moved.append(record.prompt_id)
                self.report.n_added += 1
            else:
                self.report.n_exact_duplicates += 1
                self.report.add_note(
                    f"line {record.line_no}: this prompt was battled for training in slice "
                    f"{slice_id}, so it cannot join the eval set; left out."
                )
        return list(new.values()), moved

    def _classify_new(self, new: list[_Record]) -> _Classified:
        """Prompt rows for the new ids, with status active | contaminated | near_duplicate."""
        status = ["active"] * len(new)
        duplicate_of: list[str | None] = [None] * len(new)
        contaminated_by: list[str | None] = [None] * len(new)
        if not new:
            return _Classified(self._prompt_rows(new, status, duplicate_of, contaminated_by))
        check_eval = self.split == "pool" and bool(self.eval_index().ids)
        ngram_words = self.config.prompts.contamination_ngram if check_eval else None
        features = featurize([dedup_text(r.messages) for r in new], self.params, ngram_words)
        if check_eval:
            eval_index = self.eval_index()
            overlaps = _eval_overlaps(features, np.arange(len(new)), eval_index, self.params)
            for doc, item in overlaps.items():
                status[doc], contaminated_by[doc] = "contaminated", eval_index.ids[item]
        index = self.pool_index() if self.split == "pool" else self.eval_index()
        alive = np.array([s == "active" for s in status])
        for doc, kept_id in self._near_duplicates(features, alive, index, new).items():
            status[doc], duplicate_of[doc] = "near_duplicate", kept_id
        rows = self._prompt_rows(new, status, duplicate_of, contaminated_by)
        return _Classified(rows, index, features)

    def _near_duplicates(
        self, features: Features, alive: np.ndarray, index: _PromptIndex, new: list[_Record]
    ) -> dict[int, str]:
        """doc -> id of the kept prompt it duplicates. Docs are decided in order, each against
        kept stored prompts and kept earlier docs of the batch, most shared bands first."""
        alive_docs = np.flatnonzero(alive)
        stored = index.bands.query(
            features.band_keys[alive_docs], MAX_BUCKET_ITEMS, MAX_CANDIDATES_PER_PROMPT
        )
        stored_sets = _shingles_of(self.config, self.params, index, stored.item)
        by_doc = {
            doc: [(shared, True, item) for shared, item in pairs]
            for doc, pairs in _grouped(stored, alive_docs).items()
        }
        batch = self_candidates(features.band_keys, MAX_BUCKET_ITEMS, MAX_CANDIDATES_PER_PROMPT)
        for doc, pairs in _grouped(batch).items():
            by_doc.setdefault(doc, []).extend((shared, False, item) for shared, item in pairs)
        kept = alive.copy()
        found: dict[int, str] = {}
        for doc in sorted(by_doc):
            if not kept[doc]:
                continue
            mine = features.shingle_set(doc)
            ranked = sorted(by_doc[doc], key=lambda c: -c[0])[:MAX_CANDIDATES_PER_PROMPT]
            for _, is_stored, item in ranked:
                if not is_stored and not kept[item]:
                    continue
                other = stored_sets[item] if is_stored else features.shingle_set(item)
                if jaccard(mine, other) > self.params.threshold:
                    kept[doc] = False
                    found[doc] = index.ids[item] if is_stored else new[item].prompt_id
                    break
        return found

    def _prompt_rows(
        self,
        new: list[_Record],
        status: list[str],
        duplicate_of: list[str | None],
        contaminated_by: list[str | None],
    ) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "prompt_id": [r.prompt_id for r in new],
                "messages": [messages_json(r.messages) for r in new],
                "prompt_text": [r.prompt_text for r in new],
                "source": self.report.source,
                "category": pd.Series([r.category for r in new], dtype=object),
                "split": self.split,
                "status": status,
                "duplicate_of": pd.Series(duplicate_of, dtype=object),
                "contaminated_by": pd.Series(contaminated_by, dtype=object),
                "n_chars": pd.Series([r.n_chars for r in new], dtype="int64"),
                "added_at": now_utc(),
            }
        )

    def _write(self, fresh: list[_Record], rows: pd.DataFrame, moved: list[str]) -> None:
        """Prompts, occurrences and moves of one batch in one transaction."""
        occurrences = pd.DataFrame(
            {
                "file_sha256": [r.occurrence_sha256 for r in fresh],
                "line_no": [r.line_no for r in fresh],
                "prompt_id": [r.prompt_id for r in fresh],
                "source": self.report.source,
                "file_path": self.container.path,
                "added_at": now_utc(),
            }
        )
        with _connect(self.config) as con, transaction(con):
            insert_new(con, "prompts", rows, key=["prompt_id"])
            insert_new(con, "prompt_occurrences", occurrences, key=["file_sha256", "line_no"])
            if moved:
                with _registered(con, "_moved_ids", pd.DataFrame({"prompt_id": moved})):
                    con.execute(read_query("prompts_move_to_eval"))
        counts = rows["status"].value_counts()
        self.report.n_added += int(counts.get("active", 0))
        self.report.n_near_duplicates += int(counts.get("near_duplicate", 0))
        self.report.n_contaminated += int(counts.get("contaminated", 0))

    def _decontaminate_pool(self) -> None:
        """After an eval ingest: stored pool prompts overlapping any eval prompt leave the pool."""
        self._eval = None
        eval_index = self.eval_index()
        overlaps = _find_pool_overlaps(self.config, self.params, eval_index, skip=set())
        with _connect(self.config) as con, transaction(con):
            _mark_contaminated(con, overlaps)
        self.report.n_pool_decontaminated = len(overlaps)


def _find_pool_overlaps(
    config: Config, params: LshParams, eval_index: _PromptIndex, skip: set[str]
) -> pd.DataFrame:
    """(prompt_id, eval_prompt_id) of every active pool prompt overlapping an eval prompt."""
    found: list[tuple[str, str]] = []
    if not eval_index.ids:
        return pd.DataFrame(found, columns=["prompt_id", "eval_prompt_id"])
    for page in _iter_stored(config, "pool"):
        ids = list(page["prompt_id"])
        features = featurize(_texts(page["messages"]), params, config.prompts.contamination_ngram)
        docs = np.array(
            [i for i, prompt_id in enumerate(ids) if prompt_id not in skip], dtype=np.int64
        )
        for doc, item in _eval_overlaps(features, docs, eval_index, params).items():
            found.append((ids[doc], eval_index.ids[item]))
    return pd.DataFrame(found, columns=["prompt_id", "eval_prompt_id"])


def _mark_contaminated(con: duckdb.DuckDBPyConnection, overlaps: pd.DataFrame) -> None:
    if overlaps.empty:
        return
    with _registered(con, "_contaminated", overlaps):
        con.execute(read_query("prompts_mark_contaminated"))
