"""The row writer: rows of several tables written as they come, each flush one transaction.

The connection its worker threads share (when the file is held and let go) is in
`writer_connection.py`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from flywheel.warehouse.lake import retry_on_conflict
from flywheel.warehouse.lake_attach import is_lake
from flywheel.warehouse.store import (
    WarehouseSettings,
    connect_warehouse,
    transaction,
)
from flywheel.warehouse.writer_connection import HeldConnection
from flywheel.warehouse.writes import REPLACEABLE_ROWS, insert_new, row_key

# what waits for a batch's commit: a future, or a callback taking the failure (None when stored)
CommitWaiter = asyncio.Future[None] | Callable[[BaseException | None], None]


@dataclass
class _Batch:
    """Rows of several tables for one transaction, and who waits for its commit."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    n_rows: int = 0
    waiters: list[CommitWaiter] = field(default_factory=list)
    written: bool = False
    _keys: set[tuple[str, Any]] | None = None

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)
        self.n_rows += 1

    def merge(self, other: _Batch) -> None:
        for table, rows in other.rows.items():
            self.rows.setdefault(table, []).extend(rows)
        self.n_rows += other.n_rows
        self._keys = None

    def keys(self) -> set[tuple[str, Any]]:
        if self._keys is None:
            self._keys = {
                (table, row_key(table, row)) for table, rows in self.rows.items() for row in rows
            }
        return self._keys


def _resolve(waiters: list[CommitWaiter], error: BaseException | None) -> None:
    """Settle waiters in the event loop: futures get the outcome, callbacks are called."""
    for waiter in waiters:
        if not isinstance(waiter, asyncio.Future):
            waiter(error)
        elif waiter.done():
            continue
        elif error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


class RowWriter:
    """Writes rows for several tables as they come, each flush in one transaction.

    Inside an event loop, `add` buffers a row; rows added together (no `await` between them)
    are handed over at once to `n_writers` worker threads, which take every row handed over
    and write it in one transaction (replacing stored error rows, see REPLACEABLE_ROWS) as soon
    as one of them is free and `min_flush_gap_s` has passed since the last flush began (a
    flush costs about the same CPU for one row as for twenty, CPU the event loop needs; the
    gap caps flushes at 1 / `min_flush_gap_s` a second); rows that come meanwhile go in the
    next. `await committed()` returns once every row added so far is committed (durable in
    DuckDB's write-ahead log; flushes are acknowledged in order), and `run_calls` keeps a call
    in its endpoint's commit backlog until then, so a killed process loses at most
    2 x `max_concurrency` sent calls per endpoint.

    A flush on an open connection costs a few milliseconds, where opening the file and
    checkpointing it cost tens (see `benchmarks/bench_calls.py`), so the workers keep the file
    open (one cursor each) while rows keep coming. They close it when none came for `linger_s`,
    and after `hold_s` for `release_gap_s` before the next flush, so that other processes
    (`flywheel sql`, which retry for `warehouse.lock_timeout_s`) get the file during a long
    step. Each such pause stalls every call waiting for its commit, hence the long `hold_s`. A
    close skips DuckDB's checkpoint (the commits made the rows durable; the next open replays
    the WAL) unless the WAL has grown past `checkpoint_wal_bytes`; `close` waits for every row
    and checkpoints; `async with RowWriter(...) as writer:` closes it. Sync callers (no event loop)
    write with `flush_now`, one burst each.
    """

    def __init__(
        self,
        warehouse: WarehouseSettings,
        *,
        n_writers: int = 2,
        linger_s: float = 0.25,
        hold_s: float = 30.0,
        release_gap_s: float = 0.5,
        checkpoint_wal_bytes: int = 1 << 20,
        min_flush_gap_s: float = 0.05,
    ) -> None:
        self.warehouse = warehouse
        self._lake = is_lake(warehouse)  # no file to hold, release or checkpoint
        self.n_writers = n_writers
        self.linger_s = linger_s
        self.hold_s = math.inf if self._lake else hold_s
        self.min_flush_gap_s = min_flush_gap_s
        self.n_flushes = 0
        self.n_rows = 0  # rows flushed (a row already stored is skipped, not counted out)
        self.flush_s = 0.0  # time spent writing, summed over the flushes
        self._staged = _Batch()  # added in the event loop, not handed over yet
        self._handover_due = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # shared with the worker threads, under _cond:
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._n_running = 0  # workers that have not decided to stop
        self._pending = _Batch()  # handed over, not taken
        self._unsettled: deque[_Batch] = deque()  # pending and in-flight batches, in order
        self._in_flight: list[_Batch] = []
        self._failure: BaseException | None = None
        self._stopping = False
        self._releasing = False
        self._last_flush_start = -math.inf
        # the open file (or lake cursors), shared by the workers:
        self._held = HeldConnection(
            warehouse,
            lake=self._lake,
            release_gap_s=release_gap_s,
            checkpoint_wal_bytes=checkpoint_wal_bytes,
        )

    # -- event-loop side -------------------------------------------------------------------

    def add(self, table: str, row: dict[str, Any]) -> None:
        if self._failure is not None:
            raise self._failure  # a failed flush ends the writer; later rows would be lost
        self._staged.add(table, row)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sync callers write with flush_now()
        if not self._handover_due:
            self._handover_due = True
            loop.call_soon(self._hand_over)  # after the current step: its rows stay together

    async def committed(self) -> None:
        """Return once every row added so far is committed; raise what a failed flush raised."""
        self._hand_over()
        future = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if not self._unsettled:
                return
            self._unsettled[-1].waiters.append(future)  # settled after every earlier batch
        await future

    def when_committed(self, callback: Callable[[BaseException | None], None]) -> None:
        """Call `callback(None)` in the event loop once every row added so far is committed,
        or `callback(error)` if a flush fails; right away when nothing is waiting."""
        self._hand_over()
        with self._cond:
            if self._failure is None and self._unsettled:
                self._unsettled[-1].waiters.append(callback)
                return
        callback(self._failure)

    def _hand_over(self) -> None:
        """Give the staged rows to the workers (starting them if none runs)."""
        self._handover_due = False
        staged, self._staged = self._staged, _Batch()
        if not staged.n_rows:
            return
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._failure is not None:
                raise self._failure
            self._loop = loop
            if not self._pending.n_rows:
                self._unsettled.append(self._pending)
            self._pending.merge(staged)
            self._stopping = False
            self._threads = [t for t in self._threads if t.is_alive()]
            while self._n_running < self.n_writers:  # workers stop when idle with the file closed
                thread = threading.Thread(target=self._work, name="flywheel-rows", daemon=True)
                thread.start()
                self._threads.append(thread)
                self._n_running += 1
            self._cond.notify()

    async def __aenter__(self) -> RowWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Write what is left and wait for its commit; checkpoint the file and release it."""
        try:
            self._hand_over()
            await self.committed()
        finally:
            with self._cond:
                self._stopping = True  # the last idle worker checkpoints, closes and stops
                self._cond.notify_all()
                threads = list(self._threads)
            for thread in threads:
                await asyncio.to_thread(thread.join)
            if self._held.held:  # the workers failed: close without checkpoint
                await asyncio.to_thread(self._held.release, False)
        if self._held.unchecked:  # released idle earlier, without a checkpoint
            await asyncio.to_thread(self._held.checkpoint_now)

    # -- worker threads --------------------------------------------------------------------

    def _work(self) -> None:
        cursor: duckdb.DuckDBPyConnection | None = None
        generation = -1
        while True:
            with self._cond:
                action, batch = self._next_action()
            if action == "stop":
                return
            if action != "write":
                self._held.release(checkpoint=action == "release-final")
                if action == "release-hold":
                    self._held.let_another_process_in()
                with self._cond:
                    self._releasing = False
                    self._cond.notify_all()
                continue
            assert batch is not None
            try:
                if cursor is None or generation != self._held.generation:
                    cursor, generation = self._held.cursor()
                self._write_batch(cursor, batch.rows, held=True)
            except BaseException as e:
                self._fail(e)
                continue  # to stop
            with self._cond:
                if self._failure is not None:
                    continue  # its waiters got the failure
                self._in_flight.remove(batch)
                batch.written = True
                settled: list[CommitWaiter] = []
                while self._unsettled and self._unsettled[0].written:
                    settled.extend(self._unsettled.popleft().waiters)
                self._held.last_write = time.monotonic()
                self._cond.notify_all()
                loop = self._loop
            if settled and loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    loop.call_soon_threadsafe(_resolve, settled, None)

    def _next_action(self) -> tuple[str, _Batch | None]:
        """What a worker does next (under _cond): write a batch, release the file, or stop."""
        action = self._choose_action()
        if action[0] == "stop":
            self._n_running -= 1
        return action

    def _choose_action(self) -> tuple[str, _Batch | None]:
        while True:
            if self._failure is not None:
                return "stop", None
            idle = not self._in_flight and not self._releasing
            held = self._held.held
            if self._pending.n_rows and not self._releasing:
                if held and (
                    time.monotonic() - self._held.opened_at >= self.hold_s
                    or self._held.someone_waits()
                ):
                    if idle:
                        self._releasing = True
                        return "release-hold", None
                elif (gap_s := self._flush_gap_left_s()) > 0:
                    self._cond.wait(gap_s)
                    continue
                elif not self._in_flight or not (
                    self._pending.keys() & set().union(*(b.keys() for b in self._in_flight))
                ):  # the same key in two open transactions would conflict
                    batch, self._pending = self._pending, _Batch()
                    self._in_flight.append(batch)
                    self._last_flush_start = time.monotonic()
                    return "write", batch
            elif idle and held:
                if self._stopping:
                    self._releasing = True
                    return "release-final", None
                remaining_s = self._held.last_write + self.linger_s - time.monotonic()
                if remaining_s <= 0:
                    self._releasing = True
                    return "release-idle", None
                self._cond.wait(remaining_s)
                continue
            elif idle and not self._pending.n_rows:
                return "stop", None  # the file is closed: started again by the next rows
            self._cond.wait()

    def _flush_gap_left_s(self) -> float:
        """Seconds until the next flush may begin (none wait once the writer is closing)."""
        if self._stopping:
            return 0.0
        return self._last_flush_start + self.min_flush_gap_s - time.monotonic()

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = (
                    error if isinstance(error, Exception) else RuntimeError("row writer stopped")
                )
            waiters = [f for batch in self._unsettled for f in batch.waiters]
            self._unsettled.clear()
            self._in_flight.clear()
            self._cond.notify_all()
            loop = self._loop
        if waiters and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(_resolve, waiters, self._failure)

    def _write_batch(
        self, con: duckdb.DuckDBPyConnection, rows: dict[str, list[dict[str, Any]]], held: bool
    ) -> None:
        """Write `rows` in one transaction. On the open connection a stored row is looked for
        to replace only when its key may have one (see `_replaceable_keys`). On a DuckLake the
        transaction runs again when another writer's commit conflicts with it."""
        started = time.perf_counter()
        if self._lake:
            retry_on_conflict(
                lambda: self._write_transaction(con, rows, held=False),
                self.warehouse.lock_timeout_s,
            )
        else:
            self._write_transaction(con, rows, held)
        self._held.unchecked = not self._lake
        self.n_flushes += 1
        self.n_rows += sum(len(r) for r in rows.values())
        self.flush_s += time.perf_counter() - started

    def _write_transaction(
        self, con: duckdb.DuckDBPyConnection, rows: dict[str, list[dict[str, Any]]], held: bool
    ) -> None:
        with transaction(con):
            for table, table_rows in rows.items():
                if not table_rows:
                    continue
                if not held or table not in REPLACEABLE_ROWS:
                    insert_new(con, table, table_rows)
                    continue
                known = self._held.replaceable_keys(con, table)
                insert_new(con, table, table_rows, may_replace=known.__contains__)
                known.update(row_key(table, row) for row in table_rows)

    # -- sync callers ----------------------------------------------------------------------

    def flush_now(self) -> None:
        """Write what is buffered, synchronously (outside an event loop)."""
        staged, self._staged = self._staged, _Batch()
        self.write(staged.rows)

    def write(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        """One burst: open, write `batch` in one transaction, commit, close (checkpointed)."""
        if not any(batch.values()):
            return
        with connect_warehouse(self.warehouse) as con:
            self._write_batch(con, batch, held=False)
        self._held.unchecked = False
