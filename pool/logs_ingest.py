"""Production logs in: conversations and their feedback into the warehouse, their prompts into
the pool.

`add_log_files(config, paths)` (the CLI's `flywheel logs add`) and `add_configured_logs(config)`
(the round's start: every file the `logs.paths` globs match) read each file as
`pool.logs_files` plans it (complete records only, from where its last read stopped), in
batches of `prompts.batch_size` records. First, with `logs.add_prompts`, the opening prompts of
conversations that an earlier add stored and stopped before the pool took them are offered to
the pool (`add_missing_prompts`). Then, per batch:

1. build     each record parsed in its format and made private (`pool.logs_batches`: with
             `logs.redact`, on by default, e-mail addresses, phone and card numbers and secrets
             are replaced, counted by kind; user ids become salted hashes); a bad record is
             skipped and named with its file, line and nearest format. Nothing is stored before
             this. A large file is built in a worker process (`pool.logs_worker`), beside 2 and 3.
2. write     in one transaction per batch: the batch's `log_files` row (the hash of the file up
             to the batch's last record), `log_conversations`, `log_turns`, `feedback`, each by
             its natural key (a conversation read again adds nothing); a feedback record on its
             own joins its conversation, stored before or earlier in the read, else it is
             skipped and named.
3. prompts   with `logs.add_prompts`, the opening prompt (the turns before the first answer, as
             stored) of every new conversation whose prompt the pool lacks goes through the
             pool's own ingest (`add_prompt_records`, source `logs.source`): exact and
             near-duplicate dedup, decontamination against the eval set, in file order, while
             the next batches are built and written. A prompt the pool refuses leaves its
             conversations without a prompt id.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flywheel.config import Config
from flywheel.pool.logs_batches import BatchBuilder, BuildSettings, LogBatch, file_batches
from flywheel.pool.logs_files import ReadPlan, StoredRead, check_log_file, plan_read
from flywheel.pool.logs_report import LogsReport
from flywheel.pool.logs_worker import batches_in_worker, uses_worker
from flywheel.pool.logs_writes import append_feedback, append_new_conversations
from flywheel.pool.records import prefetched
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query, registered, transaction
from flywheel.warehouse.writes import insert_new


def add_log_files(
    config: Config, paths: Sequence[str | Path], source: str | None = None
) -> LogsReport:
    """Ingest log files (each read from where its last read stopped) and their prompts."""
    started = time.perf_counter()
    report = LogsReport(source=source or config.logs.source)
    files = [check_log_file(Path(p)) for p in paths]
    if config.logs.add_prompts:
        left_over = add_missing_prompts(config, report.source)
        logged = add_logged_prompts(config, _written(config, files, report), report.source)
        report.prompt_summary = "\n".join(s for s in (left_over, logged) if s) or None
    else:
        for _ in _written(config, files, report):
            pass
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


def _written(config: Config, files: list[Path], report: LogsReport) -> Iterator[dict[str, Any]]:
    """Each file's new batches written, one after the other; yields the opening prompt
    records (`{"messages": [...]}`) of the new conversations whose prompt the pool lacks,
    each prompt once."""
    offered: set[str] = set()  # prompt ids handed to the pool by this ingest
    for path in files:
        plan = _plan(config, path, report)
        if plan is not None:
            yield from _FileIngest(config, path, report, offered).run(plan)


class _FileIngest:
    """One file's read: batches built (here or in a worker process) and written."""

    def __init__(self, config: Config, path: Path, report: LogsReport, offered: set[str]) -> None:
        self.config = config
        self.path = path
        self.where = str(path)
        self.report = report
        self.settings = BuildSettings(
            source=report.source,
            redact=config.logs.redact,
            add_prompts=config.logs.add_prompts,
            max_chars=config.prompts.max_chars,
            batch_size=config.prompts.batch_size,
            salt=config.logs.resolved_salt(),
            salt_env=config.logs.user_salt_env,
        )
        self.builder = BatchBuilder(self.settings, self.where)  # detached feedback's rows
        self.offered = offered
        self.seen_ids: set[str] = set()  # conversations stored by this read

    def run(self, plan: ReadPlan) -> Iterator[dict[str, Any]]:
        """Write each batch while the next one is built, by a worker process for a large file
        and by a background thread otherwise (the warehouse's inserts and checkpoint run
        outside Python's lock); yields each batch's prompts for the pool."""
        if uses_worker(plan):
            batches = batches_in_worker(self.settings, plan, self.where)
        else:
            batches = prefetched(file_batches(self.settings, plan, self.where))
        for batch in batches:
            yield from self.write(plan, batch)

    def write(self, plan: ReadPlan, batch: LogBatch) -> list[dict[str, Any]]:
        """The batch's log_files row, conversations, turns and feedback in one transaction;
        the prompt records of its new conversations' openings that the pool lacks."""
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
            prompts = self.prompts_to_offer(con, batch, stored)
        self.seen_ids.update(ids["conversation_id"])
        self.report.n_records += batch.n_records
        self.report.n_conversations += n_new
        self.report.n_conversations_known += len(stored)
        self.report.n_feedback += n_feedback
        self.report.redactions.update(batch.counts.by_kind)
        return prompts

    def prompts_to_offer(self, con: Any, batch: LogBatch, stored: set[str]) -> list[dict]:
        """`{"messages": ...}` of each opening prompt of the batch's new conversations that
        neither the pool holds nor this ingest offered before (each prompt id once)."""
        wanted: dict[str, list[dict[str, str]]] = {}
        for conversation_id, prompt_id, messages in batch.openings:
            if conversation_id not in stored and prompt_id not in self.offered:
                wanted.setdefault(prompt_id, messages)
        if not wanted:
            return []
        with registered(con, "_batch_ids", pd.DataFrame({"prompt_id": list(wanted)})):
            in_pool = {r[0] for r in con.execute(read_query("prompts_existing")).fetchall()}
        self.offered.update(wanted)
        return [{"messages": m} for prompt_id, m in wanted.items() if prompt_id not in in_pool]

    def attach_detached(self, con: Any, batch: LogBatch) -> None:
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
            row = self.builder.feedback_row(
                detached.conversation_id, _with_turn(detached.feedback, turn), batch
            )
            batch.feedback.append({**row, "line_no": line_no})

    def last_answer_index(self, con: Any, conversation_id: str, batch: LogBatch) -> int:
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

    def file_row(self, plan: ReadPlan, batch: LogBatch) -> dict[str, Any]:
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


def _plan(config: Config, path: Path, report: LogsReport) -> ReadPlan | None:
    """The read of one file planned against its recorded reads; None when nothing is new."""
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
        return None
    return plan


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


def add_logged_prompts(
    config: Config, records: Iterable[dict[str, Any]], source: str
) -> str | None:
    """The pool ingest of `records` (read as it goes: the files are written meanwhile), then
    the conversations whose prompt the pool refused lose their prompt id; the ingest's
    summary (None when there was no record)."""
    from flywheel.pool.ingest import add_prompt_records

    report = add_prompt_records(config, records, source)
    with connect_warehouse(config.warehouse) as con:
        con.execute(read_query("logs_prompts_unresolved"))
    return report.summary() if report.n_records else None


def add_missing_prompts(config: Config, source: str) -> str | None:
    """The opening prompts of stored conversations that the pool lacks (an earlier add that
    stopped before its prompts were in) through the pool's ingest; its summary (None: none)."""
    missing = missing_prompts(config)
    if missing.num_rows == 0:
        return None
    return add_logged_prompts(config, prompt_records(missing), source)
