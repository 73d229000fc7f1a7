"""One way to call any OpenAI-compatible endpoint: bounded concurrency, retries, a call cache.

Every request is identified by a content hash (`call_id`) of the configured endpoint, the
model, the messages and the sampling parameters. Before anything is sent, the hashes of a
whole batch are looked up in the warehouse (`llm_calls`) in one query; a request answered
before is served from there and never sent again. The rest go out through the async
`openai` client, at most `max_concurrency` in flight per endpoint, each with a timeout and
retried with exponential backoff and jitter (honouring `Retry-After`) when the failure is
transient: 429, 408, 5xx, timeouts and connection errors. A 400 or 401 is not retried.

A call that still fails is a value (`CallResult.error`), stored as an error row and retried
on a later run (the row is then replaced); successes are never sent again. Rows are written
by a `RowWriter` in short bursts (every 256 results or second, and at the end), in
one transaction with the rows derived from them, so a killed process loses only the calls in
flight and unflushed, and never leaves duplicates. API keys are read from the environment
when the client is built and never reach a row, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb
import openai
import pandas as pd
from openai.types.chat import ChatCompletion

from flywheel.config import SANDBOX_URL, EndpointConfig, WarehouseConfig
from warehouse.store import connect, insert_new, now_utc, read_query, transaction

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
# One writer at a time per process: each burst also re-runs the (idempotent) migrations and
# views, which two concurrent transactions would conflict on.
_WRITE_LOCK = threading.Lock()


@contextmanager
def open_warehouse(warehouse: WarehouseConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short connection burst, one at a time in this process (see `_WRITE_LOCK`)."""
    with _WRITE_LOCK, connect(warehouse.path, timeout_s=warehouse.lock_timeout_s) as con:
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

    async def _attempt(self, request: ChatRequest) -> tuple[Any, float]:
        async with self._semaphore:
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

    async def call(self, request: ChatRequest, call_id: str | None = None) -> CallResult:
        """Send one request (no cache), retrying transient failures; failures are values."""
        call_id = call_id or call_id_for(self.endpoint, request)
        n_attempts = 0
        while True:
            n_attempts += 1
            try:
                reply, latency_ms = await self._attempt(request)
            except (openai.OpenAIError, TimeoutError) as e:
                wait_s, why_stop = self._retry_delay_s(e, n_attempts)
                if wait_s is None:
                    cause = describe_error(e, self._secret)
                    return CallResult(call_id, n_attempts=n_attempts, error=f"{cause} ({why_stop})")
                await asyncio.sleep(wait_s)
                continue
            return self._result(call_id, reply, latency_ms, n_attempts)

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


class RowWriter:
    """Buffers rows for several tables and writes them together in short connection bursts.

    A flush runs in a worker thread, opens the warehouse, writes every buffered table in one
    transaction (replacing stored error rows, see REPLACEABLE_ROWS) and closes it; the event
    loop keeps serving calls meanwhile. Inside an event loop, `add` starts a background flush
    when `flush_every_n` rows are buffered or `flush_every_s` seconds have passed since the last
    one, and `close` waits for it and writes the rest; sync callers write with `flush_now`.
    A killed process loses only what was added since the last flush (at most about a second;
    a burst costs ~0.1 s of connect, write and checkpoint, so more often slows the calls).
    """

    def __init__(
        self, warehouse: WarehouseConfig, *, flush_every_n: int = 256, flush_every_s: float = 1.0
    ) -> None:
        self.warehouse = warehouse
        self.flush_every_n = flush_every_n
        self.flush_every_s = flush_every_s
        self.n_written: dict[str, int] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._n_pending = 0
        self._last_flush = time.monotonic()
        self._flushing: asyncio.Task[None] | None = None

    def add(self, table: str, row: dict[str, Any]) -> None:
        self._pending.setdefault(table, []).append(row)
        self._n_pending += 1
        due = self._n_pending >= self.flush_every_n or (
            time.monotonic() - self._last_flush >= self.flush_every_s
        )
        if not due or (self._flushing is not None and not self._flushing.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sync callers write with flush_now()
        self._surface_failure()
        self._flushing = loop.create_task(asyncio.to_thread(self.write, self._take()))

    def _take(self) -> dict[str, list[dict[str, Any]]]:
        batch, self._pending, self._n_pending = self._pending, {}, 0
        self._last_flush = time.monotonic()
        return batch

    def _surface_failure(self) -> None:
        if self._flushing is not None and self._flushing.done():
            self._flushing.result()  # re-raise a failed write

    async def close(self) -> None:
        """Wait for the flush in progress, then write what is left."""
        if self._flushing is not None:
            await self._flushing
            self._flushing = None
        await asyncio.to_thread(self.write, self._take())

    def flush_now(self) -> None:
        """Write what is buffered, synchronously (outside an event loop)."""
        self.write(self._take())

    def write(self, batch: dict[str, list[dict[str, Any]]]) -> None:
        if not any(batch.values()):
            return
        with open_warehouse(self.warehouse) as con, transaction(con):
            for table, rows in batch.items():
                if rows:
                    n_added = write_rows(con, table, rows)
                    self.n_written[table] = self.n_written.get(table, 0) + n_added


def write_rows(con: Any, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Idempotent write by natural key; stored error rows with the same key are replaced."""
    key = TABLE_KEYS[table]
    frame = pd.DataFrame(list(rows))
    if table in REPLACEABLE_ROWS:
        key_column, condition = REPLACEABLE_ROWS[table]
        con.execute(
            f"delete from {table} where {condition} and {key_column} in (select unnest(?::varchar[]))",
            [frame[key_column].tolist()],
        )
    return insert_new(con, table, frame, [key])


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
    request as its answer arrives (cached answers first), so callers can buffer derived rows
    in the same `writer`; each sent call's `llm_calls` row is buffered there too. `cached`:
    the cache entries when the caller looked them up already (see `load_cached_calls`).
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
            result = await caller.call(request, call_id)
            writer.add("llm_calls", call_row(endpoint, request, result, round_id))
            stats.n_sent += 1
            stats.n_attempts += result.n_attempts
            stats.cost_usd += result.cost_usd or 0.0
            if not result.ok:
                stats.n_failed += len(by_call[call_id])
                cause = (result.error or "").split(" ", 1)[0].rstrip(":")
                stats.errors[cause] = stats.errors.get(cause, 0) + 1
            deliver(call_id, result)

        try:
            async with asyncio.TaskGroup() as group:
                for call_id in to_send:
                    group.create_task(send(call_id))
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
        return results, stats

    return run_sync(main())
