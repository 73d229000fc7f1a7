"""The ingest: prompt files and records into the pool, deduplicated and decontaminated.

Ingest (`add_prompt_file`, `add_prompt_records`) streams records in batches of
`prompts.batch_size` (the next batch is parsed in a background thread meanwhile); each batch
is deduplicated, decontaminated and written in short warehouse bursts, so memory does not
grow with the file and a crash loses at most the batch in flight (adding the file again
resumes: stored occurrences are skipped).

1. validate   a record is in one of the formats of `pool.formats` (flywheel `prompt`, OpenAI
              `messages`, ShareGPT `conversations`, Alpaca `instruction`), optionally with
              `category` (text or integer); its turns are an optional system turn, then
              user/assistant alternating, ending with the user (a final assistant turn is
              kept as `reference_answer`); a bad line (JSON, UTF-8, fields, roles, empty
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

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import Config
from flywheel.pool.dedup import (
    Features,
    featurize,
    jaccard,
    self_candidates,
)
from flywheel.pool.index import (
    MAX_BUCKET_ITEMS,
    MAX_CANDIDATES_PER_PROMPT,
    PromptIndex,
    eval_overlaps,
    find_pool_overlaps,
    grouped_candidates,
    load_index,
    lsh_params_for,
    mark_contaminated,
    shingles_of,
)
from flywheel.pool.normalise import (
    dedup_text,
    messages_json,
)
from flywheel.pool.records import (
    Record,
    RecordProblem,
    RecordSource,
    Split,
    check_file,
    prefetched,
    read_records,
    record_sha256,
    sha256_of_file,
    validate_record,
)
from flywheel.pool.report import IngestReport, require_a_valid_record
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query, registered, transaction
from flywheel.warehouse.writes import insert_new


def add_prompt_file(
    config: Config, path: str | Path, source: str | None = None, split: Split = "pool"
) -> IngestReport:
    """Ingest a prompt file (JSONL, JSON, CSV, Parquet; see `pool.records.read_records`) into
    the pool (or, with split="eval", the eval set)."""
    file_path = check_file(Path(path))
    file_sha256 = sha256_of_file(file_path)
    numbered = read_records(file_path, config.prompts.batch_size)
    report = IngestReport(source=source or file_path.stem, split=split, path=str(path))
    container = RecordSource(str(file_path.resolve()), file_sha256)
    _Ingest(config, report, container).run(numbered)
    require_a_valid_record(report)
    return report


def add_prompt_records(
    config: Config, records: Iterable[dict[str, Any]], source: str, split: Split = "pool"
) -> IngestReport:
    """Ingest in-memory records ({"prompt": ...} or {"messages": [...]}, optional "category")
    through the same path as a file; record i (from 1) plays the part of line i."""
    report = IngestReport(source=source, split=split)
    container = RecordSource(f"<records:{source}>", file_sha256=None)
    return _Ingest(config, report, container).run(enumerate(records, start=1))


@dataclass(frozen=True)
class _Classified:
    """The new prompts of a batch, classified, and what is needed to index the kept ones."""

    rows: pd.DataFrame
    index: PromptIndex | None = None
    features: Features | None = None

    def index_kept(self) -> None:
        """After the batch is written: its active prompts join the index of their split."""
        if self.index is None or self.features is None:
            return
        kept = np.flatnonzero(self.rows["status"].to_numpy() == "active")
        self.index.add(list(self.rows["prompt_id"].iloc[kept]), self.features, kept)


class _Ingest:
    """One ingest: batches of records through validation, dedup, decontamination and writes."""

    def __init__(self, config: Config, report: IngestReport, container: RecordSource) -> None:
        self.config = config
        self.report = report
        self.container = container
        self.split: Split = report.split
        self.params = lsh_params_for(config)
        self._pool: PromptIndex | None = None
        self._eval: PromptIndex | None = None

    def pool_index(self) -> PromptIndex:
        if self._pool is None:
            self._pool = load_index(self.config, self.params, "pool")
        return self._pool

    def eval_index(self) -> PromptIndex:
        if self._eval is None:
            self._eval = load_index(self.config, self.params, "eval")
        return self._eval

    def run(self, numbered: Iterable[tuple[int, Any]]) -> IngestReport:
        """Every batch through dedup and writes; the next batch is read and validated in a
        background thread meanwhile (it overlaps the warehouse writes and numpy work)."""
        started = time.perf_counter()
        for valid in prefetched(self._validated_batches(numbered)):
            if valid:
                self._ingest_batch(valid)
        if self.split == "eval":
            self._decontaminate_pool()
        self.report.wall_s = time.perf_counter() - started
        return self.report

    def _validated_batches(self, numbered: Iterable[tuple[int, Any]]) -> Iterator[list[Record]]:
        """The valid records of each batch; problems and record counts go to the report."""
        iterator = iter(numbered)
        while chunk := list(islice(iterator, self.config.prompts.batch_size)):
            records = [self._validate(line_no, obj) for line_no, obj in chunk]
            self.report.n_records += len(records)
            for problem in records:
                if isinstance(problem, RecordProblem):
                    self.report.add_problem(problem.line_no, problem.reason)
            yield [r for r in records if isinstance(r, Record)]

    def _validate(self, line_no: int, obj: Any) -> Record | RecordProblem:
        if self.container.file_sha256 is not None:
            occurrence = self.container.file_sha256
        elif isinstance(obj, RecordProblem):
            occurrence = ""
        else:
            occurrence = record_sha256(obj)
        return validate_record(line_no, obj, self.config.prompts.max_chars, occurrence)

    def _ingest_batch(self, records: list[Record]) -> None:
        """Dedup, decontaminate and write one batch in short warehouse bursts."""
        occurrences = pd.DataFrame(
            {
                "file_sha256": [r.occurrence_sha256 for r in records],
                "line_no": [r.line_no for r in records],
            }
        )
        with connect_warehouse(self.config.warehouse) as con:
            with registered(con, "_batch_occurrences", occurrences):
                seen = set(con.execute(read_query("prompts_seen_occurrences")).fetchall())
            fresh = [r for r in records if (r.occurrence_sha256, r.line_no) not in seen]
            ids = pd.DataFrame({"prompt_id": [r.prompt_id for r in fresh]})
            with registered(con, "_batch_ids", ids):
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
        self, fresh: list[Record], existing: dict[str, tuple]
    ) -> tuple[list[Record], list[str]]:
        """The first record of each unknown id, and (eval ingest) stored pool ids to move."""
        new: dict[str, Record] = {}
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

    def _classify_new(self, new: list[Record]) -> _Classified:
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
            overlaps = eval_overlaps(features, np.arange(len(new)), eval_index, self.params)
            for doc, item in overlaps.items():
                status[doc], contaminated_by[doc] = "contaminated", eval_index.ids[item]
        index = self.pool_index() if self.split == "pool" else self.eval_index()
        alive = np.array([s == "active" for s in status])
        for doc, kept_id in self._near_duplicates(features, alive, index, new).items():
            status[doc], duplicate_of[doc] = "near_duplicate", kept_id
        rows = self._prompt_rows(new, status, duplicate_of, contaminated_by)
        return _Classified(rows, index, features)

    def _near_duplicates(
        self, features: Features, alive: np.ndarray, index: PromptIndex, new: list[Record]
    ) -> dict[int, str]:
        """doc -> id of the kept prompt it duplicates. Docs are decided in order, each against
        kept stored prompts and kept earlier docs of the batch, most shared bands first."""
        alive_docs = np.flatnonzero(alive)
        stored = index.bands.query(
            features.band_keys[alive_docs], MAX_BUCKET_ITEMS, MAX_CANDIDATES_PER_PROMPT
        )
        stored_sets = shingles_of(self.config, self.params, index, stored.item)
        by_doc = {
            doc: [(shared, True, item) for shared, item in pairs]
            for doc, pairs in grouped_candidates(stored, alive_docs).items()
        }
        batch = self_candidates(features.band_keys, MAX_BUCKET_ITEMS, MAX_CANDIDATES_PER_PROMPT)
        for doc, pairs in grouped_candidates(batch).items():
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
        new: list[Record],
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
                "reference_answer": pd.Series([r.reference_answer for r in new], dtype=object),
                "added_at": now_utc(),
            }
        )

    def _write(self, fresh: list[Record], rows: pd.DataFrame, moved: list[str]) -> None:
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
        with connect_warehouse(self.config.warehouse) as con, transaction(con):
            insert_new(con, "prompts", rows, key=["prompt_id"])
            insert_new(con, "prompt_occurrences", occurrences, key=["file_sha256", "line_no"])
            if moved:
                with registered(con, "_moved_ids", pd.DataFrame({"prompt_id": moved})):
                    con.execute(read_query("prompts_move_to_eval"))
        counts = rows["status"].value_counts()
        self.report.n_added += int(counts.get("active", 0))
        self.report.n_near_duplicates += int(counts.get("near_duplicate", 0))
        self.report.n_contaminated += int(counts.get("contaminated", 0))

    def _decontaminate_pool(self) -> None:
        """After an eval ingest: stored pool prompts overlapping any eval prompt leave the pool."""
        self._eval = None
        eval_index = self.eval_index()
        overlaps = find_pool_overlaps(self.config, self.params, eval_index, skip=set())
        with connect_warehouse(self.config.warehouse) as con, transaction(con):
            mark_contaminated(con, overlaps)
        self.report.n_pool_decontaminated = len(overlaps)
