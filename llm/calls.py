"""The call cache and batch runner: every request answered once, stored as it arrives.

Before anything is sent, the call ids of a whole batch are looked up in the warehouse
(`llm_calls`) in one query; a request answered before is served from there and never sent
again. A call that fails after its retries is stored as an error row and retried on a later run
(the row is then replaced); successes are never sent again. Each result's `llm_calls` row is
written by a `RowWriter` as soon as it arrives, in one transaction with the rows derived from
it (responses, judgments, battles). A call frees its concurrency slot once its rows are handed
to the writer, so a slow commit does not hold the endpoint back, but it keeps a place in the
endpoint's commit backlog (as many places as `max_concurrency`) until they are committed: a
killed process loses at most 2 x `max_concurrency` sent calls per endpoint (those on the wire and
those answered but not yet committed), which a rerun sends again, and never leaves duplicates.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flywheel.config import EndpointConfig, WarehouseConfig
from flywheel.llm.client import CallResult, ChatRequest, EndpointCaller, call_id_for
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query
from flywheel.warehouse.writer import RowWriter

T = TypeVar("T")
ProgressFn = Callable[[int, int], None]


def call_row(
    endpoint: EndpointConfig, request: ChatRequest, result: CallResult, round_id: int | None
) -> dict[str, Any]:
    """The `llm_calls` row of one sent request (never the key)."""
    return {
        "call_id": result.call_id,
        "endpoint": endpoint.name,
        "model": endpoint.model,
        "request_json": json.dumps(request.payload(), ensure_ascii=False),
        "response_text": result.text,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "latency_ms": result.latency_ms,
        "cost_usd": result.cost_usd,
        "n_attempts": result.n_attempts,
        "error": result.error,
        "round_id": round_id,
        "created_at": now_utc(),
    }


def load_cached_calls(warehouse: WarehouseConfig, call_ids: Sequence[str]) -> dict[str, CallResult]:
    """Successful calls already stored, by call id, in one query (errors are not cached)."""
    if not call_ids:
        return {}
    with connect_warehouse(warehouse) as con:
        rows = con.execute(read_query("calls_cached"), [list(call_ids)]).fetchall()
    return {
        row[0]: CallResult(
            call_id=row[0],
            text=row[1],
            finish_reason=row[2],
            prompt_tokens=row[3],
            completion_tokens=row[4],
            latency_ms=row[5],
            cost_usd=row[6],
            n_attempts=row[7] or 0,
            cached=True,
        )
        for row in rows
    }


@dataclass
class CallBatchStats:
    """Counts of one batch of requests to one endpoint."""

    n_requests: int = 0
    n_cached: int = 0
    n_sent: int = 0
    n_failed: int = 0
    n_attempts: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    n_flushes: int = 0  # set by call_endpoint: the writer's transactions
    flush_s: float = 0.0  # and the time they took, summed

    def count_sent(self, result: CallResult, n_requests: int) -> None:
        """A sent call that answered `n_requests` identical requests of the batch."""
        self.n_sent += 1
        self.n_attempts += result.n_attempts
        self.cost_usd += result.cost_usd or 0.0
        if not result.ok:
            self.n_failed += n_requests
            cause = (result.error or "").split(" ", 1)[0].rstrip(":")
            self.errors[cause] = self.errors.get(cause, 0) + 1


async def run_calls(
    endpoint: EndpointConfig,
    requests: Sequence[ChatRequest],
    *,
    warehouse: WarehouseConfig,
    writer: RowWriter,
    round_id: int | None = None,
    on_result: Callable[[int, CallResult], None] | None = None,
    on_progress: ProgressFn | None = None,
    stats: CallBatchStats | None = None,
    cached: dict[str, CallResult] | None = None,
) -> list[CallResult]:
    """Answer every request, from the cache when possible, else through the endpoint.

    Identical requests in the batch are sent once. `on_result(i, result)` is called for each
    request as its answer arrives (cached answers first), so callers can add derived rows to
    the same `writer` (synchronously: they then share the transaction of the call's
    `llm_calls` row). A sent call keeps a place in the endpoint's commit backlog until that
    transaction commits (see the module's docstring). `cached`: the cache entries when the
    caller looked them up already (see `load_cached_calls`).
    """
    stats = stats if stats is not None else CallBatchStats()
    started = time.perf_counter()
    call_ids = [call_id_for(endpoint, r) for r in requests]
    if cached is None:
        cached = await asyncio.to_thread(load_cached_calls, warehouse, sorted(set(call_ids)))
    cached = {c: cached[c] for c in set(call_ids) if c in cached}
    by_call: dict[str, list[int]] = {}
    for i, call_id in enumerate(call_ids):
        by_call.setdefault(call_id, []).append(i)
    results: list[CallResult | None] = [None] * len(requests)
    stats.n_requests += len(requests)
    deliver = _deliverer(by_call, results, on_result, on_progress)
    for call_id, result in cached.items():
        stats.n_cached += len(by_call[call_id])
        deliver(call_id, result)
    to_send = [c for c in by_call if c not in cached]
    if to_send:
        sends = [(call_id, requests[by_call[call_id][0]]) for call_id in to_send]

        def store(call_id: str, request: ChatRequest, result: CallResult) -> None:
            writer.add("llm_calls", call_row(endpoint, request, result, round_id))
            stats.count_sent(result, len(by_call[call_id]))
            deliver(call_id, result)  # derived rows join the call's row in its transaction

        await _send_all(EndpointCaller(endpoint), sends, writer, store)
    stats.wall_s += time.perf_counter() - started
    return [r for r in results if r is not None]


def _deliverer(
    by_call: dict[str, list[int]],
    results: list[CallResult | None],
    on_result: Callable[[int, CallResult], None] | None,
    on_progress: ProgressFn | None,
) -> Callable[[str, CallResult], None]:
    """Hands a call's result to every request of the batch it answers, then counts progress."""
    n_total, n_done = len(results), 0

    def deliver(call_id: str, result: CallResult) -> None:
        nonlocal n_done
        for i in by_call[call_id]:
            results[i] = result
            if on_result is not None:
                on_result(i, result)
            n_done += 1
        if on_progress is not None:
            on_progress(n_done, n_total)

    return deliver


class _CommitBacklog:
    """An endpoint's commit backlog: `n_places` places, each held by a stored call until its
    rows are committed. The calls stored in one step of the event loop wait for their commit
    together (one `when_committed` a step, which hands their rows over at once)."""

    def __init__(self, writer: RowWriter, n_places: int) -> None:
        self._writer = writer
        self._places = asyncio.Semaphore(n_places)
        self._n_stored = 0  # stored in this step, not yet waiting for their commit

    async def enter(self) -> None:
        await self._places.acquire()  # when commits lag, the call waits here

    def leave(self, n_places: int = 1) -> None:
        for _ in range(n_places):
            self._places.release()

    def leave_once_committed(self) -> None:
        """Give this call's place back once its rows (added just now) are committed."""
        self._n_stored += 1
        if self._n_stored == 1:
            asyncio.get_running_loop().call_soon(self._wait_for_commit)

    def _wait_for_commit(self) -> None:
        n_stored, self._n_stored = self._n_stored, 0
        self._writer.when_committed(lambda _error: self.leave(n_stored))


async def _send_all(
    caller: EndpointCaller,
    sends: Sequence[tuple[str, ChatRequest]],
    writer: RowWriter,
    store: Callable[[str, ChatRequest, CallResult], None],
) -> None:
    """Send every (call id, request) at once within the endpoint's concurrency; `store` adds
    each result's rows to `writer`. A call frees its slot once its rows are added and its place
    in the commit backlog (`max_concurrency` places) once they are committed, so that at most
    2 x `max_concurrency` answers are ever sent and not yet durable."""
    backlog = _CommitBacklog(writer, caller.max_concurrency)

    async def send(call_id: str, request: ChatRequest) -> None:
        result = await caller.send_holding_slot(request, call_id)
        try:
            await backlog.enter()  # when commits lag, the slot waits here: no new sends
            try:
                store(call_id, request, result)
            except BaseException:
                backlog.leave()
                raise
        finally:
            caller.release_slot()
        backlog.leave_once_committed()

    try:
        async with asyncio.TaskGroup() as group:
            for call_id, request in sends:
                group.create_task(send(call_id, request))
        await writer.committed()  # every result is stored when this returns
    finally:
        await caller.aclose()


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, also when this thread runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, name="flywheel-calls")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def call_endpoint(
    endpoint: EndpointConfig,
    requests: Sequence[ChatRequest],
    *,
    warehouse: WarehouseConfig,
    round_id: int | None = None,
    on_progress: ProgressFn | None = None,
) -> tuple[list[CallResult], CallBatchStats]:
    """Sync convenience: answer `requests` (cache first), store the calls, return results."""

    async def main() -> tuple[list[CallResult], CallBatchStats]:
        stats = CallBatchStats()
        async with RowWriter(warehouse) as writer:
            results = await run_calls(
                endpoint,
                requests,
                warehouse=warehouse,
                writer=writer,
                round_id=round_id,
                on_progress=on_progress,
                stats=stats,
            )
        stats.n_flushes, stats.flush_s = writer.n_flushes, writer.flush_s
        return results, stats

    return run_sync(main())
