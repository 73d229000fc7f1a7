"""A large log file's batches built in a worker process, beside the writer.

Reading, JSON decoding, parsing and redaction (`pool.logs_batches`) are Python work: in the
ingest's own process they would share one core with the warehouse writes and the pool's
dedup of the prompts. A file with at least `WORKER_MIN_BYTES` new bytes is therefore read by
a worker process (spawned: it shares nothing with this one) that hands its built batches over
a queue, `QUEUE_DEPTH` waiting beside the one it builds (the writer is the slower side). An
error in the worker (a user id without a salt, a file that cannot be read) is raised here as it
would be in-process; a worker that dies is named. The worker exits when its parent is gone, so
a killed ingest leaves no process behind; every batch is written in its own transaction, so
nothing written is lost or doubled.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import replace
from queue import Empty, Full
from typing import Any

from flywheel.pool.logs_batches import BuildSettings, LogBatch, file_batches
from flywheel.pool.logs_files import READ_BLOCK, ReadPlan, open_log

WORKER_MIN_BYTES = 16 << 20  # smaller files are built in this process (no start-up cost)
QUEUE_DEPTH = 1  # built batches waiting for the writer (~0.4 GB each at 20k records)
POLL_S = 1.0  # how often a wait checks that the other process is alive
_CONTEXT = multiprocessing.get_context("spawn")


def uses_worker(plan: ReadPlan) -> bool:
    return plan.end - plan.start >= WORKER_MIN_BYTES


def batches_in_worker(settings: BuildSettings, plan: ReadPlan, where: str) -> Iterator[LogBatch]:
    """`file_batches(settings, plan, where)`, built in a worker process. `plan.digest` is not
    sent (a hash object does not pickle): the worker hashes the bytes before `plan.start`."""
    queue: Any = _CONTEXT.Queue(maxsize=QUEUE_DEPTH)
    worker = _CONTEXT.Process(
        target=_build_batches,
        args=(settings, replace(plan, digest=None), where, queue, os.getpid()),
        name="flywheel-logs-reader",
        daemon=True,
    )
    worker.start()
    try:
        while True:
            kind, item = _next_message(queue, worker, where)
            if kind == "batch":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        queue.close()


def _next_message(queue: Any, worker: Any, where: str) -> tuple[str, Any]:
    while True:
        try:
            return queue.get(timeout=POLL_S)
        except Empty:
            if worker.is_alive():
                continue
            try:  # its last message may have arrived as it exited
                return queue.get(timeout=POLL_S)
            except Empty:
                raise RuntimeError(
                    f"the worker process reading log file {where!r} stopped (exit code "
                    f"{worker.exitcode}) before it was done; nothing of its unfinished batch "
                    "was written. Add the file again to read on from there."
                ) from None


def _build_batches(
    settings: BuildSettings, plan: ReadPlan, where: str, queue: Any, parent_pid: int
) -> None:
    """The worker: every batch onto the queue, then "done" (or the error that stopped it)."""
    try:
        plan.digest = prefix_digest(plan)
        for batch in file_batches(settings, plan, where):
            _put(queue, ("batch", batch), parent_pid)
        _put(queue, ("done", None), parent_pid)
    except BaseException as error:  # handed to the parent, which raises it
        _put(queue, ("error", error), parent_pid)


def prefix_digest(plan: ReadPlan) -> Any:
    """sha256 of the file's bytes before `plan.start` (where the read starts)."""
    digest, left = hashlib.sha256(), plan.start
    with open_log(plan.path) as handle:
        while left > 0:
            block = handle.read(min(READ_BLOCK, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest


def _put(queue: Any, message: tuple[str, Any], parent_pid: int) -> None:
    while True:
        try:
            queue.put(message, timeout=POLL_S)
            return
        except Full:
            if os.getppid() != parent_pid:  # the parent is gone: nobody will read this
                raise SystemExit(1) from None
