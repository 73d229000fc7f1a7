"""One flywheel run at a time per warehouse: a second run is refused, naming the first.

The lock is an advisory `flock` on `<warehouse>.run` (the DuckDB file, or a DuckLake's SQLite
catalog file), so the kernel releases it when the process holding it dies, however it dies: a
killed run never leaves a stale lock. A DuckLake on a Postgres catalog is shared by several
machines, where a file lock means nothing: no lock is taken (the deployment's concurrency
limit keeps scheduled rounds apart), and `hold_run_lock` yields False.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from flywheel.config import WarehouseConfig
from flywheel.warehouse.store import now_utc


class RunLockedError(RuntimeError):
    """Another flywheel run holds this warehouse."""


def run_lock_path(warehouse: WarehouseConfig) -> Path | None:
    file = warehouse.local_file
    return None if file is None else Path(f"{file}.run")


@contextlib.contextmanager
def hold_run_lock(warehouse: WarehouseConfig) -> Iterator[bool]:
    """Hold the warehouse's run lock inside the block; yields whether there is one."""
    path = run_lock_path(warehouse)
    if path is None:
        yield False
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            raise RunLockedError(
                f"another flywheel run is working on {warehouse.location} ({holder}). Fix: wait for "
                "it to finish, or stop it (Ctrl-C, or kill that PID) and run again to resume."
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"PID {os.getpid()}, started {now_utc():%Y-%m-%d %H:%M:%S} UTC\n")
        lock_file.flush()
        try:
            yield True
        finally:
            lock_file.truncate(0)
            fcntl.flock(lock_file, fcntl.LOCK_UN)
