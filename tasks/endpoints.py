"""One way to call any OpenAI-compatible endpoint: bounded concurrency, retries, a call cache.

Every request is identified by a content hash (`call_id`) of the configured endpoint, the
model, the messages and the sampling parameters. Before anything is sent, the hashes of a
whole batch are looked up in the warehouse (`llm_calls`) in one query; a request answered
before is served from there and never sent again. The rest go out through the async
`openai` client, at most `max_concurrency` in flight per endpoint, each with a timeout and
retried with exponential backoff and jitter (honouring `Retry-After`) when the failure is
transient: 429, 408, 5xx, timeouts and connection errors. A 400 or 401 is not retried.

A call that still fails is a value (`CallResult.error`), stored as an error row and retried
on a later run (the row is then replaced); successes are never sent again. Each result's
`llm_calls` row is written by a `RowWriter` as soon as it arrives, in one transaction with the
rows derived from it (responses, judgments, battles), and the call keeps its concurrency slot
until that transaction commits: a killed process loses at most `max_concurrency` sent calls
per endpoint (those in flight), which a rerun sends again, and never leaves duplicates. API
keys are read from the environment when the client is built and never reach a row, a log
line or an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import openai
from openai.types.chat import ChatCompletion

from flywheel.config import SANDBOX_URL, EndpointConfig, WarehouseConfig
from flywheel.warehouse.store import (
    connect,
    connect_warehouse,
    now_utc,
    read_query,
    transaction,
    waiting_flag,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
ProgressFn = Callable[[int, int], None]

# (key column, condition of a stored row that a new row may replace): a failed call, game
# or battle is retried on a later run and its row replaced; a success is never replaced.
REPLACEABLE_ROWS: dict[str, tuple[str, str]] = {
    "llm_calls": ("call_id", "error is not null"),
    "judgments": ("judgment_id", "error is not null and raw_text is null"),
    "battles": ("battle_id", "outcome = 'error'"),
}
TABLE_KEYS: dict[str, str] = {
    "llm_calls": "call_id",
    "responses": "response_id",
    "judgments": "judgment_id",
    "battles": "battle_id",
}
TRANSIENT_STATUS_CODES = frozenset({408, 409, 429})  # plus every 5xx
NO_KEY = "no-key"  # EndpointConfig.api_key() of a keyless endpoint
_SECRET_PATTERN = re.compile(r"(?i)\b(?:sk|pk|rk)-[\w*.-]{4,}|\bbearer\s+\S+")
# One warehouse burst at a time per process (a RowWriter's flush, a cache lookup): the first
# burst on a file migrates it, and the writer's checkpoint needs no other transaction running.
_WRITE_LOCK = threading.Lock()
WAITER_GRACE_S = 3.0  # how long a released writer waits for a waiting process to get in


@contextmanager
def open_warehouse(warehouse: WarehouseConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short connection burst, one at a time in this process (see `_WRITE_LOCK`)."""
    with _WRITE_LOCK, connect_warehouse(warehouse) as con:
        yield con


def step_logger(name: str = __name__) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, else the module's standard logger."""
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger()
        except MissingContextError:
            return logging.getLogger(name)
    except ImportError:  # pragma: no cover - prefect is a dependency
        return logging.getLogger(name)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of transient failures: `base_delay_s * 2**attempt`, capped, with jitter."""

    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 120.0  # a longer Retry-After ends the call as an error

    def backoff_s(self, attempt: int) -> float:
        """Delay before retry number `attempt + 1` (0-based): exponential, half jitter."""
        delay_s = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return delay_s * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request: messages and sampling parameters.

    `cache_tag` is hashed into the call id but never sent: it separates requests that are
    identical on the wire but must not share an answer (a second sample, or a served
    champion whose weights changed behind the same model name).
    """

    messages: tuple[tuple[tuple[str, str], ...], ...]
    temperature: float
    max_tokens: int
    cache_tag: str | None = None

    @classmethod
    def of(
        cls,
        messages: Sequence[dict[str, str]],
        temperature: float,
        max_tokens: int,
        cache_tag: str | None = None,
    ) -> ChatRequest:
        frozen = tuple(tuple(sorted((k, str(v)) for k, v in m.items())) for m in messages)
        return cls(frozen, float(temperature), int(max_tokens), cache_tag)

    @classmethod
    def for_endpoint(
        cls,
        endpoint: EndpointConfig,
        messages: Sequence[dict[str, str]],
        cache_tag: str | None = None,
    ) -> ChatRequest:
        """A request with the endpoint's configured temperature and max_tokens."""
        return cls.of(messages, endpoint.temperature, endpoint.max_tokens, cache_tag)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]

    def body(self, model: str) -> dict[str, Any]:
        """The JSON body sent to /chat/completions (the cache tag is never sent)."""
        return {
            "model": model,
            "messages": self.message_dicts,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def payload(self) -> dict[str, Any]:
        """What is stored in `llm_calls.request_json`: messages and sampling parameters."""
        body: dict[str, Any] = {
            "messages": self.message_dicts,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.cache_tag is not None:
            body["cache_tag"] = self.cache_tag
        return body


@dataclass
class CallResult:
    """The outcome of one request: a reply, or `error` naming the cause after the retries."""

    call_id: str
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    n_attempts: int = 0
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def endpoint_identity(endpoint: EndpointConfig) -> str:
    """The configured base URL (`sandbox` for the embedded server, whatever its port)."""
    return endpoint.base_url.rstrip("/")


def call_id_for(endpoint: EndpointConfig, request: ChatRequest) -> str:
    """sha256 of canonical JSON of (endpoint, model, messages, sampling parameters)."""
    body = {"endpoint": endpoint_identity(endpoint), "model": endpoint.model, **request.payload()}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_id(*parts: object) -> str:
    """A natural key: sha256 of the canonical JSON of `parts` (used for rows other than calls)."""
    text = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_endpoint(endpoint: EndpointConfig, sandbox_url: str | None) -> EndpointConfig:
    """The endpoint with `base_url: sandbox` replaced by the running sandbox's URL."""
    if endpoint.base_url != SANDBOX_URL:
        return endpoint
    if not sandbox_url:
        raise ValueError(
            f"endpoint {endpoint.name!r} uses the sandbox but no sandbox is running. Fix: start it "
            "(sandbox.server.start_sandbox) and pass its base_url as sandbox_url."
        )
    return endpoint.model_copy(update={"base_url": sandbox_url})


def call_cost_usd(
    endpoint: EndpointConfig, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """Prices per million tokens from the config; None when the server reported no usage."""
    if prompt_tokens is None and completion_tokens is None:
        return None
    return (prompt_tokens or 0) * endpoint.price_in_per_mtok / 1e6 + (
        completion_tokens or 0
    ) * endpoint.price_out_per_mtok / 1e6


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters per token) for planning costs before paying."""
    return max(1, len(text) // 4)


def estimate_cost_usd(endpoint: EndpointConfig, requests: Sequence[ChatRequest]) -> float:
    """Upper-bound cost of sending `requests`: estimated prompt tokens plus max_tokens each."""
    prompt_tokens = sum(
        estimate_tokens("".join(v for m in r.messages for _, v in m)) for r in requests
    )
    completion_tokens = sum(r.max_tokens for r in requests)
    return call_cost_usd(endpoint, prompt_tokens, completion_tokens) or 0.0


def retry_after_s(error: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or date)."""
    headers = error.response.headers
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_transient(error: Exception) -> bool:
    """429, 408, 409, 5xx, timeouts and connection errors are worth retrying; others are not."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code in TRANSIENT_STATUS_CODES or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError | TimeoutError)  # APITimeoutError too


def redact(text: str, secret: str | None = None) -> str:
    """`text` without the key: the key itself, and anything shaped like a key or bearer token
    (servers echo keys in errors, e.g. "Incorrect API key provided: sk-ab***yz")."""
    if secret and secret != NO_KEY:
        text = text.replace(secret, "[redacted]")
    return _SECRET_PATTERN.sub("[redacted]", text)


def describe_error(error: Exception, secret: str | None = None) -> str:
    """A short cause for the `error` column: class, status and the server's message (redacted)."""
    if isinstance(error, openai.APIStatusError):
        cause = f"{type(error).__name__} (HTTP {error.status_code}): {str(error)[:300]}"
    elif isinstance(error, openai.APITimeoutError | TimeoutError):
        cause = f"timeout: {type(error).__name__}"
    else:
        cause = f"{type(error).__name__}: {str(error)[:300]}"
    return redact(cause, secret)


class EndpointCaller:
    """Sends requests to one endpoint: at most `max_concurrency` in flight, retries, timeout.

    Holds the configured endpoint (its identity for call ids) and the resolved URL; the
    API key goes into the client only.
    """

    def __init__(
        self,
        endpoint: EndpointConfig,
        sandbox_url: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.url = resolve_endpoint(endpoint, sandbox_url).base_url
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency or endpoint.max_concurrency
        self._semaphore = asyncio.Semaphore(self.max_concurrency)
        self._secret = endpoint.api_key()
        self._client = openai.AsyncOpenAI(
            api_key=self._secret,
            base_url=self.url,
            max_retries=0,
            timeout=endpoint.timeout_s,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _post(self, request: ChatRequest) -> tuple[Any, float]:
        started = time.perf_counter()
        async with asyncio.timeout(self.endpoint.timeout_s + 1.0):
            # client.post (the client's public verb for any route) skips create()'s
            # per-call parameter transformation, a third of the client's CPU per call.
            reply = await self._client.post(
                "/chat/completions",
                body=request.body(self.endpoint.model),
                cast_to=ChatCompletion,
            )
        return reply, (time.perf_counter() - started) * 1000

    async def send_holding_slot(self, request: ChatRequest, call_id: str) -> CallResult:
        """Send with retries; return the outcome still holding the last attempt's slot.

        Each attempt takes a slot of the endpoint's semaphore; a failed attempt that is retried
        gives it back before the backoff, the last attempt keeps it: the caller frees it with
        `release_slot` once the result is stored.
        """
        n_attempts = 0
        while True:
            n_attempts += 1
            await self._semaphore.acquire()
            keep_slot = False
            try:
                try:
                    reply, latency_ms = await self._post(request)
                except (openai.OpenAIError, TimeoutError) as e:
                    wait_s, why_stop = self._retry_delay_s(e, n_attempts)
                    if wait_s is None:
                        cause = describe_error(e, self._secret)
                        result = CallResult(
                            call_id, n_attempts=n_attempts, error=f"{cause} ({why_stop})"
                        )
                        keep_slot = True
                        return result
                else:
                    result = self._result(call_id, reply, latency_ms, n_attempts)
                    keep_slot = True
                    return result
            finally:
                if not keep_slot:
                    self._semaphore.release()
            await asyncio.sleep(wait_s)

    @asynccontextmanager
    async def calling(
        self, request: ChatRequest, call_id: str | None = None
    ) -> AsyncIterator[CallResult]:
        """Send one request (no cache) and keep its concurrency slot until the block ends.

        Failures are values. A caller that stores the result inside the block (and waits for
        the commit) bounds the requests sent but not yet durably recorded by `max_concurrency`.
        """
        call_id = call_id or call_id_for(self.endpoint, request)
        result = await self.send_holding_slot(request, call_id)
        try:
            yield result
        finally:
            self.release_slot()

    def release_slot(self, _error: BaseException | None = None) -> None:
        """Free a slot kept by `send_holding_slot` (a `RowWriter.when_committed` callback)."""
        self._semaphore.release()

    async def call(self, request: ChatRequest, call_id: str | None = None) -> CallResult:
        """Send one request (no cache), retrying transient failures; failures are values."""
        async with self.calling(request, call_id) as result:
            return result

    def _retry_delay_s(self, error: Exception, n_attempts: int) -> tuple[float | None, str]:
        """Seconds to wait before the next attempt, or None and why the call ends here."""
        tries = f"after {n_attempts} attempt{'s' if n_attempts > 1 else ''}"
        if not is_transient(error) or n_attempts > self.endpoint.max_retries:
            return None, tries
        asked_s = retry_after_s(error) if isinstance(error, openai.APIStatusError) else None
        if asked_s is None:
            return self.retry.backoff_s(n_attempts - 1), ""
        if asked_s > self.retry.max_retry_after_s:
            limit_s = self.retry.max_retry_after_s
            return None, f"Retry-After {asked_s:.0f} s exceeds {limit_s:.0f} s, {tries}"
        return asked_s * random.uniform(1.0, 1.2), ""  # as asked, spread a little

    def _result(self, call_id: str, reply: Any, latency_ms: float, n_attempts: int) -> CallResult:
        choices = getattr(reply, "choices", None) or []
        if not choices:
            return CallResult(call_id, n_attempts=n_attempts, error="malformed reply: no choices")
        usage = getattr(reply, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        return CallResult(
            call_id,
            text=choices[0].message.content or "",
            finish_reason=choices[0].finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            cost_usd=call_cost_usd(self.endpoint, prompt_tokens, completion_tokens),
            n_attempts=n_attempts,
        )


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
                (table, row.get(TABLE_KEYS[table]))
                for table, rows in self.rows.items()
                for row in rows
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
    as one of them is free: a flush never waits for a count or a timer, and rows that come
    during a flush go in the next one. `await committed()` returns once every row added so far
    is committed (durable in DuckDB's write-ahead log; flushes are acknowledged in order), and
    `run_calls` keeps a call's concurrency slot until then, so a killed process loses at most
    `max_concurrency` sent calls per endpoint.

    A flush on an open connection costs a few milliseconds, where opening the file and
    checkpointing it cost tens (see `benchmarks/bench_calls.py`), so the workers keep the file
    open (one cursor each) while rows keep coming. They close it when none came for `linger_s`,
    and after `hold_s` for `release_gap_s` before the next flush, so that other processes
    (`flywheel sql`, which retry for `warehouse.lock_timeout_s`) get the file during a long
    step. Each such pause stalls every call waiting for its commit, hence the long `hold_s`. A
    close skips DuckDB's checkpoint (the commits made the rows durable; the next open replays
    the WAL) unless the WAL has grown past `checkpoint_wal_bytes`; `close` waits for every row
    and checkpoints. Sync callers (no event loop) write with `flush_now`, one burst each.
    """

    def __init__(
        self,
        warehouse: WarehouseConfig,
        *,
        n_writers: int = 2,
        linger_s: float = 0.25,
        hold_s: float = 30.0,
        release_gap_s: float = 0.5,
        checkpoint_wal_bytes: int = 1 << 20,
    ) -> None:
        self.warehouse = warehouse
        self.n_writers = n_writers
        self.linger_s = linger_s
        self.hold_s = hold_s
        self.release_gap_s = release_gap_s
        self.checkpoint_wal_bytes = checkpoint_wal_bytes
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
        self._last_write = 0.0
        # the open connection and the workers' cursors, under _con_lock:
        self._con_lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._con_stack: ExitStack | None = None
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._generation = 0
        self._opened_at = 0.0
        self._may_replace: dict[str, set[Any]] = {}  # see _replaceable_keys
        self._unchecked = False  # rows committed since the last checkpoint

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
            if self._con is not None:  # the workers failed: close without checkpoint
                await asyncio.to_thread(self._release, False)
        if self._unchecked:  # released idle earlier, without a checkpoint
            await asyncio.to_thread(self._checkpoint_now)

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
                self._release(checkpoint=action == "release-final")
                if action == "release-hold":
                    self._let_another_process_in()
                with self._cond:
                    self._releasing = False
                    self._cond.notify_all()
                continue
            assert batch is not None
            try:
                if cursor is None or generation != self._generation:
                    cursor, generation = self._cursor()
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
                self._last_write = time.monotonic()
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
            held = self._con is not None
            if self._pending.n_rows and not self._releasing:
                if held and (
                    time.monotonic() - self._opened_at >= self.hold_s or self._someone_waits()
                ):
                    if idle:
                        self._releasing = True
                        return "release-hold", None
                elif not self._in_flight or not (
                    self._pending.keys() & set().union(*(b.keys() for b in self._in_flight))
                ):  # the same key in two open transactions would conflict
                    batch, self._pending = self._pending, _Batch()
                    self._in_flight.append(batch)
                    return "write", batch
            elif idle and held:
                if self._stopping:
                    self._releasing = True
                    return "release-final", None
                remaining_s = self._last_write + self.linger_s - time.monotonic()
                if remaining_s <= 0:
                    self._releasing = True
                    return "release-idle", None
                self._cond.wait(remaining_s)
                continue
            elif idle and not self._pending.n_rows:
                return "stop", None  # the file is closed: started again by the next rows
            self._cond.wait()

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

    def _cursor(self) -> tuple[duckdb.DuckDBPyConnection, int]:
        """A cursor of the open connection for this worker (the file is opened if needed)."""
        with self._con_lock:
            if self._con is None:
                with _WRITE_LOCK:
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
                self._con, self._con_stack = con, stack
                self._opened_at = self._last_write = time.monotonic()
                self._generation += 1
            cursor = self._con.cursor()
            self._cursors.append(cursor)
            return cursor, self._generation

    def _write_batch(
        self, con: duckdb.DuckDBPyConnection, rows: dict[str, list[dict[str, Any]]], held: bool
    ) -> None:
        """Write `rows` in one transaction. On the open connection a stored row is looked for
        to replace only when its key may have one (see `_replaceable_keys`)."""
        started = time.perf_counter()
        with transaction(con):
            for table, table_rows in rows.items():
                if not table_rows:
                    continue
                if not held or table not in REPLACEABLE_ROWS:
                    write_rows(con, table, table_rows)
                    continue
                known = self._replaceable_keys(con, table)
                write_rows(con, table, table_rows, may_replace=known.__contains__)
                known.update(row.get(TABLE_KEYS[table]) for row in table_rows)
        self._unchecked = True
        self.n_flushes += 1
        self.n_rows += sum(len(r) for r in rows.values())
        self.flush_s += time.perf_counter() - started

    def _replaceable_keys(self, con: duckdb.DuckDBPyConnection, table: str) -> set[Any]:
        """Keys that may have a stored row to replace while the file is open: those of the
        replaceable rows stored when it was opened (one query per table), and those written
        since. Other processes cannot write meanwhile: this process holds the file."""
        with self._con_lock:
            keys = self._may_replace.get(table)
            if keys is None:
                key_column, condition = REPLACEABLE_ROWS[table]
                query = f"select {key_column} from {table} where {condition}"
                keys = self._may_replace[table] = {k for (k,) in con.execute(query).fetchall()}
            return keys

    def _someone_waits(self) -> bool:
        """Another process (an analyst's `flywheel sql`, say) is retrying to open the file."""
        return waiting_flag(self.warehouse.path).exists()

    def _let_another_process_in(self) -> None:
        """Pause `release_gap_s`, longer while a waiting process has not got the file yet
        (it removes its flag once in; our next open then waits for it to finish)."""
        deadline = time.monotonic() + max(self.release_gap_s, WAITER_GRACE_S)
        time.sleep(self.release_gap_s)
        while self._someone_waits() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _release(self, checkpoint: bool) -> None:
        """Close the file, checkpointing first when asked or when the WAL is large."""
        with self._con_lock, _WRITE_LOCK:  # in _cursor's order
            con, stack, cursors = self._con, self._con_stack, self._cursors
            self._con, self._con_stack, self._cursors, self._may_replace = None, None, [], {}
            self._generation += 1
            if con is None or stack is None:
                return
            try:
                for cursor in cursors:
                    with contextlib.suppress(duckdb.Error):
                        cursor.close()
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
            self._unchecked = False
        except duckdb.Error as e:  # another connection of this process is in a transaction
            logger.debug("checkpoint of %s skipped: %s", self.warehouse.path, e)

    def _checkpoint_now(self) -> None:
        with open_warehouse(self.warehouse) as con:
            self._checkpoint(con)

    # -- sync callers ----------------------------------------------------------------------

    def flush_now(self) -> None:
        """Write what is buffered, synchronously (outside an event loop)."""
        staged, self._staged = self._staged, _Batch()
        self.write(staged.rows)

    def write(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        """One burst: open, write `batch` in one transaction, commit, close (checkpointed)."""
        if not any(batch.values()):
            return
        with open_warehouse(self.warehouse) as con:
            self._write_batch(con, batch, held=False)
        self._unchecked = False


def column_types(con: Any, table: str) -> dict[str, str]:
    """The table's columns and their SQL types, in order."""
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_name = ? "
        "order by ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise ValueError(f"no table {table!r} in the warehouse")
    return dict(rows)


_COLUMN_TYPES: dict[str, dict[str, str]] = {}  # of the tables in TABLE_KEYS (set by migrations)


def _keys_in(column: str, keys: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column in (...)` for `keys`, and its parameters: a list of placeholders is cheapest for
    a few keys, one list parameter for many."""
    if len(keys) <= 64:
        return f"{column} in ({', '.join('?' for _ in keys)})", list(keys)
    return f"{column} = any(?::varchar[])", [list(keys)]


def write_rows(
    con: Any,
    table: str,
    rows: Sequence[dict[str, Any]],
    *,
    may_replace: Callable[[Any], bool] | None = None,
) -> int:
    """Idempotent write by natural key; stored error rows with the same key are replaced.

    Duplicates inside `rows` keep their first row. Three short statements (under a millisecond
    each on a small table, see `benchmarks/bench_calls.py`): delete the replaceable rows of
    these keys, look up which keys are stored, insert the others with one typed list parameter
    per column. `may_replace(key)`: whether a stored row may need replacing (default: any
    key); the delete is skipped when none may.
    """
    key = TABLE_KEYS[table]
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row.get(key) is None:
            raise ValueError(f"cannot write to {table}: a row has no {key}")
        first.setdefault(row[key], row)
    types = _COLUMN_TYPES.get(table)
    if types is None:
        types = _COLUMN_TYPES[table] = column_types(con, table)
    present = set().union(*(r.keys() for r in first.values()))
    unknown = sorted(present - set(types))
    if unknown:
        raise ValueError(f"cannot write to {table}: unknown columns {unknown}")
    replace = [k for k in first if may_replace is None or may_replace(k)]
    if replace and table in REPLACEABLE_ROWS:
        key_column, condition = REPLACEABLE_ROWS[table]
        where, params = _keys_in(key_column, replace)
        con.execute(f"delete from {table} where {condition} and {where}", params)
    where, params = _keys_in(key, list(first))
    stored = {
        k for (k,) in con.execute(f"select {key} from {table} where {where}", params).fetchall()
    }
    new = [r for k, r in first.items() if k not in stored]
    if not new:
        return 0
    names = [c for c in types if c in present or c == "created_at"]
    created_at = now_utc()
    columns = ", ".join(f"unnest(?::{types[c]}[])" for c in names)
    con.execute(
        f"insert into {table} ({', '.join(names)}) select {columns}",
        [[r.get(c, created_at) if c == "created_at" else r.get(c) for r in new] for c in names],
    )
    return len(new)


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
    with open_warehouse(warehouse) as con:
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


async def run_calls(
    endpoint: EndpointConfig,
    requests: Sequence[ChatRequest],
    *,
    warehouse: WarehouseConfig,
    writer: RowWriter,
    sandbox_url: str | None = None,
    round_id: int | None = None,
    on_result: Callable[[int, CallResult], None] | None = None,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    stats: CallBatchStats | None = None,
    cached: dict[str, CallResult] | None = None,
) -> list[CallResult]:
    """Answer every request, from the cache when possible, else through the endpoint.

    Identical requests in the batch are sent once. `on_result(i, result)` is called for each
    request as its answer arrives (cached answers first), so callers can add derived rows to
    the same `writer` (synchronously: they then share the transaction of the call's
    `llm_calls` row). A sent call keeps its endpoint's concurrency slot until that
    transaction commits. `cached`: the cache entries when the caller looked them up already
    (see `load_cached_calls`).
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
    n_total, n_done = len(requests), 0
    stats.n_requests += n_total

    def deliver(call_id: str, result: CallResult) -> None:
        nonlocal n_done
        for i in by_call[call_id]:
            results[i] = result
            if on_result is not None:
                on_result(i, result)
            n_done += 1
        if on_progress is not None:
            on_progress(n_done, n_total)

    for call_id, result in cached.items():
        stats.n_cached += len(by_call[call_id])
        deliver(call_id, result)
    to_send = [c for c in by_call if c not in cached]
    if to_send:
        caller = EndpointCaller(endpoint, sandbox_url, retry=retry)

        async def send(call_id: str) -> None:
            request = requests[by_call[call_id][0]]
            result = await caller.send_holding_slot(request, call_id)
            try:
                writer.add("llm_calls", call_row(endpoint, request, result, round_id))
                stats.n_sent += 1
                stats.n_attempts += result.n_attempts
                stats.cost_usd += result.cost_usd or 0.0
                if not result.ok:
                    stats.n_failed += len(by_call[call_id])
                    cause = (result.error or "").split(" ", 1)[0].rstrip(":")
                    stats.errors[cause] = stats.errors.get(cause, 0) + 1
                deliver(call_id, result)  # derived rows join the call's row in its transaction
            except BaseException:
                caller.release_slot()
                raise
            # the slot is freed once these rows are durable, by the writer's acknowledgement
            writer.when_committed(caller.release_slot)

        try:
            async with asyncio.TaskGroup() as group:
                for call_id in to_send:
                    group.create_task(send(call_id))
            await writer.committed()  # every result is stored when this returns
        finally:
            await caller.aclose()
    stats.wall_s += time.perf_counter() - started
    return [r for r in results if r is not None]


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
    sandbox_url: str | None = None,
    round_id: int | None = None,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[list[CallResult], CallBatchStats]:
    """Sync convenience: answer `requests` (cache first), store the calls, return results."""

    async def main() -> tuple[list[CallResult], CallBatchStats]:
        writer = RowWriter(warehouse)
        stats = CallBatchStats()
        try:
            results = await run_calls(
                endpoint,
                requests,
                warehouse=warehouse,
                writer=writer,
                sandbox_url=sandbox_url,
                round_id=round_id,
                on_progress=on_progress,
                retry=retry,
                stats=stats,
            )
        finally:
            await writer.close()
        stats.n_flushes, stats.flush_s = writer.n_flushes, writer.flush_s
        return results, stats

    return run_sync(main())
