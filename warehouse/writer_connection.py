"""The connection a row writer's worker threads share (`RowWriter` in writer.py).

The DuckDB file is opened on the first flush and kept open, one cursor per worker, while rows
keep coming; it is let go when idle, after the writer's `hold_s`, or when another process waits
for it, skipping DuckDB's checkpoint unless the WAL has grown past `checkpoint_wal_bytes`. On a
DuckLake each worker gets a lake cursor of its own and there is no file to hold, release or
checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import duckdb

from flywheel.warehouse.store import (
    PROCESS_LOCK,
    WarehouseSettings,
    connect,
    connect_warehouse,
    waiting_flag,
)
from flywheel.warehouse.writes import REPLACEABLE_ROWS

logger = logging.getLogger(__name__)
WAITER_GRACE_S = 3.0  # how long a released writer waits for a waiting process to get in


class HeldConnection:
    """The open file (or the lake cursors) of one row writer; every method is thread-safe.

    `generation` changes whenever the connection is opened or released, so a worker knows when
    its cursor is stale. `opened_at` and `last_write` (monotonic seconds) tell the writer when
    to let go; `unchecked` is true while rows were committed since the last checkpoint."""

    def __init__(
        self,
        warehouse: WarehouseSettings,
        *,
        lake: bool,
        release_gap_s: float,
        checkpoint_wal_bytes: int,
    ) -> None:
        self.warehouse = warehouse
        self.lake = lake
        self.release_gap_s = release_gap_s
        self.checkpoint_wal_bytes = checkpoint_wal_bytes
        self.generation = 0
        self.opened_at = 0.0
        self.last_write = 0.0
        self.unchecked = False
        # the open connection and the workers' cursors, under _lock:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stack: ExitStack | None = None
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._may_replace: dict[str, set[Any]] = {}  # see replaceable_keys

    @property
    def held(self) -> bool:
        """Whether the file is open (on a DuckLake: whether a worker holds a lake cursor)."""
        return self._con is not None

    def cursor(self) -> tuple[duckdb.DuckDBPyConnection, int]:
        """A cursor of the open connection for this worker (the file is opened if needed)."""
        with self._lock:
            if self.lake:
                return self._lake_cursor(), self.generation
            if self._con is None:
                with PROCESS_LOCK:
                    stack = ExitStack()
                    con = stack.enter_context(
                        connect(
                            self.warehouse.path,
                            timeout_s=self.warehouse.lock_timeout_s,
                            checkpoint_on_close=False,
                        )
                    )
                # one thread per statement: a flush is a few tiny statements, and DuckDB's
                # thread pool costs more CPU than it saves, CPU the event loop needs
                con.execute("set threads = 1")
                self._con, self._stack = con, stack
                self.opened_at = self.last_write = time.monotonic()
                self.generation += 1
            cursor = self._con.cursor()
            self._cursors.append(cursor)
            return cursor, self.generation

    def _lake_cursor(self) -> duckdb.DuckDBPyConnection:
        """A lake cursor of its own for this worker (under _lock), closed on release."""
        if self._stack is None:
            self._stack = ExitStack()
            self.generation += 1
        cursor = self._stack.enter_context(connect_warehouse(self.warehouse))
        self._con = self._con or cursor  # "held": released when idle, like the file
        self.opened_at = self.last_write = time.monotonic()
        self._cursors.append(cursor)
        return cursor

    def replaceable_keys(self, con: duckdb.DuckDBPyConnection, table: str) -> set[Any]:
        """Keys that may have a stored row to replace while the file is open: those of the
        replaceable rows stored when it was opened (one query per table), and those written
        since. Other processes cannot write meanwhile: this process holds the file."""
        with self._lock:
            keys = self._may_replace.get(table)
            if keys is None:
                key_column, condition = REPLACEABLE_ROWS[table]
                query = f"select {key_column} from {table} where {condition}"
                keys = self._may_replace[table] = {k for (k,) in con.execute(query).fetchall()}
            return keys

    def someone_waits(self) -> bool:
        """Another process (an analyst's `flywheel sql`, say) is retrying to open the file."""
        return not self.lake and waiting_flag(self.warehouse.path).exists()

    def let_another_process_in(self) -> None:
        """Pause `release_gap_s`, longer while a waiting process has not got the file yet
        (it removes its flag once in; our next open then waits for it to finish)."""
        deadline = time.monotonic() + max(self.release_gap_s, WAITER_GRACE_S)
        time.sleep(self.release_gap_s)
        while self.someone_waits() and time.monotonic() < deadline:
            time.sleep(0.02)

    def release(self, checkpoint: bool) -> None:
        """Close the file, checkpointing first when asked or when the WAL is large."""
        with self._lock, PROCESS_LOCK:  # in cursor()'s order
            con, stack, cursors = self._con, self._stack, self._cursors
            self._con, self._stack, self._cursors, self._may_replace = None, None, [], {}
            self.generation += 1
            if con is None or stack is None:
                return
            try:
                for cursor in cursors:
                    with contextlib.suppress(duckdb.Error):
                        cursor.close()
                if self.lake:
                    return
                if checkpoint or self._wal_bytes() >= self.checkpoint_wal_bytes:
                    self._checkpoint(con)
                with contextlib.suppress(duckdb.Error):
                    con.execute("reset threads")  # a setting of the database, shared in-process
            finally:
                stack.close()

    def _wal_bytes(self) -> int:
        try:
            return Path(f"{self.warehouse.path}.wal").stat().st_size
        except OSError:
            return 0

    def _checkpoint(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            con.execute("checkpoint")
            self.unchecked = False
        except duckdb.Error as e:  # another connection of this process is in a transaction
            logger.debug("checkpoint of %s skipped: %s", self.warehouse.path, e)

    def checkpoint_now(self) -> None:
        with connect_warehouse(self.warehouse) as con:
            self._checkpoint(con)
