"""Production logs in: conversations and their feedback into the warehouse, their prompts into
the pool.

`add_log_files(config, paths)` (the CLI's `flywheel logs add`) and `add_configured_logs(config)`
(the round's start: every file the `logs.paths` globs match) read each file as
`pool.logs_files` plans it (complete records only, from where its last read stopped), in
batches of `prompts.batch_size` records:

1. parse     each record in its format (`pool.logs_formats`); a bad record is skipped and named
             with its file, line and nearest format; a feedback record on its own joins its
             conversation, stored before or earlier in the read, else it is skipped and named.
2. privacy   with `logs.redact` (on by default), e-mail addresses, phone and card numbers and
             secrets in every turn, comment and correction are replaced (`pool.logs_privacy`),
             counted by kind; user ids become salted hashes. Nothing is stored before this.
3. write     in one transaction per batch: the batch's `log_files` row (the hash of the file up
             to the batch's last record), `log_conversations`, `log_turns`, `feedback`, each by
             its natural key (a conversation read again adds nothing).
4. prompts   with `logs.add_prompts`, every logged conversation's opening prompt (the turns
             before its first answer, redacted) that the pool lacks goes through the pool's own
             ingest (`add_prompt_records`, source `logs.source`): exact and near-duplicate dedup,
             decontamination against the eval set. It runs after the files, and again at the
             next add if a run stopped before it.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.pool.logs_files import (
    LogLine,
    ReadPlan,
    StoredRead,
    check_log_file,
    plan_read,
    read_lines,
)
from flywheel.pool.logs_formats import Conversation, DetachedFeedback, parse_log_record
from flywheel.pool.logs_privacy import RedactionCounts, hash_user_id, redact_text
from flywheel.pool.logs_report import LogsReport
from flywheel.pool.logs_writes import append_feedback, append_new_conversations
from flywheel.pool.normalise import clean_content, prompt_id_of
from flywheel.pool.records import RecordProblem, prefetched
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query, registered, transaction
from flywheel.warehouse.writes import insert_new


def add_log_files(
    config: Config, paths: Sequence[str | Path], source: str | None = None
) -> LogsReport:
    """Ingest log files (each read from where its last read stopped), then their prompts."""
    started = time.perf_counter()
    report = LogsReport(source=source or config.logs.source)
    for path in [check_log_file(Path(p)) for p in paths]:
        _ingest_file(config, path, report)
    if config.logs.add_prompts:
        report.prompt_summary = add_missing_prompts(config, report.source)
    report.wall_s = time.perf_counter() - started
    return report


def configured_log_paths(config: Config) -> list[Path]:
    """The files the `logs.paths` globs match now (`~` expanded, relative to the working
    directory, `**` recursive), sorted, each once."""
    patterns = [os.path.expanduser(pattern) for pattern in config.logs.paths]
    found = {Path(p) for pattern in patterns for p in glob.glob(pattern, recursive=True)}
    return sorted(p for p in found if p.is_file())


def add_configured_logs(config: Config) -> LogsReport | None:
    """At a round's start: ingest what is new in the files `logs.paths` matches (None when it
    names none)."""
    if not config.logs.paths:
        return None
    return add_log_files(config, configured_log_paths(config))


@dataclass
class _Batch:
    """One batch's rows, built from its parsed records."""

    conversations: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    detached: list[tuple[int, DetachedFeedback]] = field(default_factory=list)
    counts: RedactionCounts = field(default_factory=RedactionCounts)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), in order
    n_records: int = 0
    n_malformed: int = 0
    file_sha256: str = ""  # the hash of the file up to the end of the batch's last record
    bytes_read: int = 0  # the file offset just after the batch's last record
    lines_read: int = 0  # the batch's last record's line


class _FileIngest:
    """One file's read: batches parsed, made private and written."""

    def __init__(self, config: Config, path: Path, report: LogsReport) -> None:
        self.config = config
        self.path = path
        self.where = str(path)
        self.report = report
        self.salt = config.logs.resolved_salt()
        self.seen_ids: set[str] = set()  # conversations stored by this read

    def private(self, text: str | None, counts: RedactionCounts) -> str | None:
        if text is None or not self.config.logs.redact:
            return text
        return redact_text(text, counts)

    def user_hash(self, conversation: Conversation, line_no: int) -> str | None:
        if conversation.user_id is None:
            return None
        if self.salt is None:
            env = self.config.logs.user_salt_env
            raise InputError(
                f"log file {self.where!r} line {line_no} has a user id, and no salt to hash it "
                f"with is set. Fix: export {env}=<a long random secret> (or set logs.user_salt)."
            )
        return hash_user_id(conversation.user_id, self.salt)

    def run(self, plan: ReadPlan) -> None:
        """Write each batch while the next one is read and built in a background thread (the
        warehouse's inserts and checkpoint run outside Python's lock, beside the parsing)."""
        for batch in prefetched(self.batches(plan)):
            self.write(plan, batch)

    def batches(self, plan: ReadPlan) -> Iterator[_Batch]:
        """The file's batches of `prompts.batch_size` records, built; each knows the hash of
        the file up to its last record (read before the next batch moves the hash on)."""
        lines = read_lines(plan)
        while chunk := list(islice(lines, self.config.prompts.batch_size)):
            file_sha256 = plan.digest.hexdigest()
            batch = self.build(chunk)
            batch.file_sha256 = file_sha256
            batch.bytes_read, batch.lines_read = chunk[-1].end_offset, chunk[-1].line_no
            del chunk  # the parsed JSON is not kept while the batch waits for the writer
            yield batch

    def build(self, chunk: list[LogLine]) -> _Batch:
        """The batch's rows (parsed, made private); its bad records named in `problems`."""
        batch = _Batch()
        for line in chunk:
            batch.n_records += 1
            parsed = (
                line.record.reason
                if isinstance(line.record, RecordProblem)
                else parse_log_record(line.record)
            )
            if isinstance(parsed, str):
                batch.n_malformed += 1
                batch.problems.append((line.line_no, parsed))
            elif isinstance(parsed, DetachedFeedback):
                batch.detached.append((line.line_no, parsed))
            else:
                for conversation in parsed:
                    self.add_conversation(batch, conversation, line.line_no)
        return batch

    def add_conversation(self, batch: _Batch, conversation: Conversation, line_no: int) -> None:
        turns = [
            {"role": t.role, "content": self.private(t.content, batch.counts)}
            for t in conversation.turns
        ]
        batch.conversations.append(
            {
                "conversation_id": conversation.conversation_id,
                "source": self.report.source,
                "log_format": conversation.log_format,
                "external_id": conversation.external_id,
                "model": conversation.model,
                "user_hash": self.user_hash(conversation, line_no),
                "started_at": conversation.started_at,
                "n_turns": len(turns),
                "prompt_id": self.opening_prompt_id(turns),
                "line_no": line_no,
            }
        )
        batch.turns.extend(
            {"conversation_id": conversation.conversation_id, "turn_index": i, **turn}
            for i, turn in enumerate(turns)
        )
        for feedback in conversation.feedback:
            batch.feedback.append(self.feedback_row(conversation.conversation_id, feedback, batch))
            batch.feedback[-1]["line_no"] = line_no

    def opening_prompt_id(self, turns: list[dict[str, Any]]) -> str | None:
        """The pool id of the turns before the first answer, as the pool's ingest computes it
        for a valid prompt; None for what cannot be one (a tool turn, empty, too long). A
        prompt the pool still refuses loses its id after the pool's ingest."""
        if not self.config.logs.add_prompts:
            return None
        first_answer = next(i for i, t in enumerate(turns) if t["role"] == "assistant")
        opening = [
            {"role": t["role"], "content": clean_content(t["content"])}
            for t in turns[:first_answer]
        ]
        roles = [t["role"] for t in opening]
        if (
            not roles
            or roles[-1] != "user"
            or "tool" in roles
            or not all(t["content"] for t in opening)
        ):
            return None
        if sum(len(t["content"]) for t in opening) > self.config.prompts.max_chars:
            return None
        return prompt_id_of(opening)

    def feedback_row(self, conversation_id: str, feedback: Any, batch: _Batch) -> dict[str, Any]:
        identity = feedback.origin_id or [
            feedback.kind,
            feedback.value,
            feedback.score,
            feedback.comment,
            feedback.correction,
        ]
        return {
            "feedback_id": content_id(
                [conversation_id, feedback.turn_index, "explicit", feedback.key, identity]
            ),
            "conversation_id": conversation_id,
            "turn_index": feedback.turn_index,
            "source": "explicit",
            "kind": feedback.kind,
            "label": feedback.label,
            "category": "correction" if feedback.correction else None,
            "score": feedback.score,
            "value": feedback.value,
            "comment": self.private(feedback.comment, batch.counts),
            "correction": self.private(feedback.correction, batch.counts),
            "feedback_key": feedback.key,
        }

    def write(self, plan: ReadPlan, batch: _Batch) -> None:
        """The batch's log_files row, conversations, turns and feedback in one transaction."""
        for line_no, reason in batch.problems:
            self.report.add_problem(self.where, line_no, reason)
        file_sha256 = batch.file_sha256
        ids = pd.DataFrame({"conversation_id": [c["conversation_id"] for c in batch.conversations]})
        with connect_warehouse(self.config.warehouse) as con, transaction(con):
            with registered(con, "_batch_conversation_ids", ids):
                stored = {
                    r[0] for r in con.execute(read_query("logs_conversations_stored")).fetchall()
                }
            self.attach_detached(con, batch)
            added_at = now_utc()
            for row in batch.conversations:
                row.update(file_sha256=file_sha256, added_at=added_at)
            for row in batch.feedback:
                row.update(file_sha256=file_sha256, created_at=added_at)
            insert_new(con, "log_files", [self.file_row(plan, batch)])
            n_new = append_new_conversations(con, batch, stored)
            n_feedback = append_feedback(con, batch, stored)
        self.seen_ids.update(ids["conversation_id"])
        self.report.n_records += batch.n_records
        self.report.n_conversations += n_new
        self.report.n_conversations_known += len(stored)
        self.report.n_feedback += n_feedback
        self.report.redactions.update(batch.counts.by_kind)

    def attach_detached(self, con: Any, batch: _Batch) -> None:
        """Feedback records on their own join their conversation, stored before or in this
        read; one whose conversation is nowhere is skipped and named."""
        if not batch.detached:
            return
        wanted = pd.DataFrame({"conversation_id": [d.conversation_id for _, d in batch.detached]})
        with registered(con, "_batch_conversation_ids", wanted):
            known = {r[0] for r in con.execute(read_query("logs_conversations_stored")).fetchall()}
        known |= self.seen_ids | {c["conversation_id"] for c in batch.conversations}
        for line_no, detached in batch.detached:
            if detached.conversation_id not in known:
                batch.n_malformed += 1
                self.report.add_problem(
                    self.where,
                    line_no,
                    f"{detached.log_format}: no logged conversation has the id "
                    f"{detached.external_id!r}; add the log that holds it first, then this "
                    "feedback in a new file",
                )
                continue
            turn = detached.feedback.turn_index
            if turn is None:
                turn = self.last_answer_index(con, detached.conversation_id, batch)
            row = self.feedback_row(
                detached.conversation_id, _with_turn(detached.feedback, turn), batch
            )
            batch.feedback.append({**row, "line_no": line_no})

    def last_answer_index(self, con: Any, conversation_id: str, batch: _Batch) -> int:
        indexes = [
            t["turn_index"]
            for t in batch.turns
            if t["conversation_id"] == conversation_id and t["role"] == "assistant"
        ]
        if indexes:
            return max(indexes)
        return con.execute(
            "select max(turn_index) from log_turns where conversation_id = ? and role = 'assistant'",
            [conversation_id],
        ).fetchone()[0]

    def file_row(self, plan: ReadPlan, batch: _Batch) -> dict[str, Any]:
        return {
            "file_sha256": batch.file_sha256,
            "path": str(self.path.resolve()),
            "source": self.report.source,
            "bytes_read": batch.bytes_read,
            "lines_read": batch.lines_read,
            "resumed_from": plan.start,
            "n_records": batch.n_records,
            "n_conversations": len(batch.conversations),
            "n_feedback": len(batch.feedback),
            "n_malformed": batch.n_malformed,
            "n_redacted": batch.counts.total,
            "redactions": json.dumps(batch.counts.as_dict()),
            "added_at": now_utc(),
        }


def _with_turn(feedback: Any, turn_index: int) -> Any:
    from dataclasses import replace

    return replace(feedback, turn_index=turn_index)


def _ingest_file(config: Config, path: Path, report: LogsReport) -> None:
    """Plan the read of one file against its recorded reads, then read what is new."""
    with connect_warehouse(config.warehouse) as con:
        stored = [
            StoredRead(*row)
            for row in con.execute(
                read_query("logs_stored_reads"), [str(path.resolve())]
            ).fetchall()
        ]
    plan = plan_read(path, stored, known_sha256=_Known(config))
    report.n_files += 1
    report.n_partial_lines += int(plan.has_partial_line)
    if plan.nothing_new:
        report.n_files_unchanged += 1
        return
    _FileIngest(config, path, report).run(plan)


class _Known:
    """`sha in known`: whether a file hash was recorded before (asked of the warehouse)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def __contains__(self, sha256: object) -> bool:
        with connect_warehouse(self.config.warehouse) as con:
            return bool(con.execute(read_query("logs_known_sha256"), [sha256]).fetchone()[0])


PROMPT_CHUNK_ROWS = 10_000  # missing prompts turned into Python records at a time


def missing_prompts(config: Config) -> pa.Table:
    """The messages (a list of {role, content}) of every logged opening prompt the pool lacks,
    in prompt id order, as one Arrow column: compact, turned into records chunk by chunk."""
    with connect_warehouse(config.warehouse) as con:
        return con.execute(read_query("logs_prompts_missing")).fetch_arrow_table()


def prompt_records(missing: pa.Table) -> Iterator[dict[str, Any]]:
    """`{"messages": [...]}` per missing prompt, in order."""
    for chunk in missing.select(["messages"]).to_batches(max_chunksize=PROMPT_CHUNK_ROWS):
        for messages in chunk.column(0).to_pylist():
            yield {"messages": messages}


def add_missing_prompts(config: Config, source: str) -> str | None:
    """The pool ingest of the logged prompts it lacks; its summary (None: none lacked)."""
    from flywheel.pool.ingest import add_prompt_records

    missing = missing_prompts(config)
    if missing.num_rows == 0:
        return None
    records = prompt_records(missing)
    summary = add_prompt_records(config, records, source).summary()
    with connect_warehouse(config.warehouse) as con:
        con.execute(read_query("logs_prompts_unresolved"))
    return summary
