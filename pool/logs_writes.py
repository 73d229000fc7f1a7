"""A batch of logged conversations into the warehouse: conversations, turns and feedback
appended as Arrow tables, inside the batch's transaction (`pool.logs_ingest` opens it).

Conversations new to the warehouse (not in `stored`, read in the same transaction) are
appended with their turns and feedback in one statement per table: no stored row can share
their keys. Feedback on a conversation stored before (read again, or a detached feedback
record) goes in by its natural key.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from flywheel.warehouse.store import registered
from flywheel.warehouse.writes import insert_new


class BatchRows(Protocol):
    """The rows of one batch (`pool.logs_ingest`): dicts named by their tables' columns."""

    conversations: list[dict[str, Any]]
    turns: list[dict[str, Any]]
    feedback: list[dict[str, Any]]


def append_rows(con: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """Append `rows` to `table` (columns by name) as one Arrow table."""
    with registered(con, "_log_rows", pa.Table.from_pylist(rows)):
        con.execute(f"insert into {table} by name select * from _log_rows")


def append_new_conversations(con: Any, batch: BatchRows, stored: set[str]) -> int:
    """Append the batch's conversations not stored before (`stored`; the first of a repeated
    id) and their turns; return how many."""
    new: dict[str, dict[str, Any]] = {}
    for row in batch.conversations:
        if row["conversation_id"] not in stored:
            new.setdefault(row["conversation_id"], row)
    if not new:
        return 0
    turns = {
        (t["conversation_id"], t["turn_index"]): t
        for t in reversed(batch.turns)  # the first of a repeated key wins
        if t["conversation_id"] in new and t["turn_index"] < new[t["conversation_id"]]["n_turns"]
    }
    append_rows(con, "log_conversations", list(new.values()))
    append_rows(con, "log_turns", list(turns.values()))
    return len(new)


def append_feedback(con: Any, batch: BatchRows, stored: set[str]) -> int:
    """The batch's feedback: on conversations new in this batch appended (no stored row can
    share their keys), on stored ones by key; return how many rows were added."""
    new_ids = {c["conversation_id"] for c in batch.conversations} - stored
    fresh: dict[str, dict[str, Any]] = {}
    known: list[dict[str, Any]] = []
    for row in batch.feedback:
        if row["conversation_id"] in new_ids:
            fresh.setdefault(row["feedback_id"], row)
        else:
            known.append(row)
    n_added = insert_new(con, "feedback", known) if known else 0
    if fresh:
        append_rows(con, "feedback", list(fresh.values()))
    return n_added + len(fresh)
