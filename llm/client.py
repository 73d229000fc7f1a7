"""The OpenAI-compatible client: one endpoint, bounded concurrency, retries, timeouts.

Requests are identified by a content hash (`call_id_for`) of the configured endpoint, the model,
the messages and the sampling parameters. Each goes out through the async `openai` client, at
most `max_concurrency` in flight per endpoint, with a timeout, retried with exponential backoff
and jitter (honouring `Retry-After`) when the failure is transient: 429, 408, 5xx, timeouts and
connection errors. A 400 or 401 is not retried; a call that still fails is a value
(`CallResult.error`). API keys are read from the environment when the client is built and never
reach a row, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import random
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import openai

from flywheel.config import EndpointConfig, RetryConfig
from flywheel.warehouse.ids import content_id

TRANSIENT_STATUS_CODES = frozenset({408, 409, 429})  # plus every 5xx
NO_KEY = "no-key"  # EndpointConfig.api_key() of a keyless endpoint
_SECRET_PATTERN = re.compile(r"(?i)\b(?:sk|pk|rk)-[\w*.-]{4,}|\bbearer\s+\S+")


def backoff_s(retry: RetryConfig, attempt: int) -> float:
    """Delay before retry number `attempt + 1` (0-based): `base_delay_s * 2**attempt`, capped
    at `max_delay_s`, with half jitter."""
    delay_s = min(retry.max_delay_s, retry.base_delay_s * 2**attempt)
    return delay_s * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request: messages and sampling parameters.

    `cache_tag` is hashed into the call id but never sent: it separates requests that are
    identical on the wire but must not share an answer (a second sample, or a served
    champion whose weights changed behind the same model name). `stop`, `seed`,
    `extra_body` (canonical JSON) and `token_limit_field` are sent, and hashed only when set,
    so the call ids of requests without them are unchanged.
    """

    messages: tuple[tuple[tuple[str, str], ...], ...]
    temperature: float
    max_tokens: int
    cache_tag: str | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra_body: str | None = None
    token_limit_field: str = "max_tokens"
    response_format: str | None = None  # JSON text of OpenAI's `response_format`, sent as is

    @classmethod
    def of(
        cls,
        messages: Sequence[dict[str, str]],
        temperature: float,
        max_tokens: int,
        cache_tag: str | None = None,
        **options: Any,
    ) -> ChatRequest:
        """`options`: stop, seed, extra_body (a dict), token_limit_field, response_format."""
        frozen = tuple(tuple(sorted((k, str(v)) for k, v in m.items())) for m in messages)
        extra = options.pop("extra_body", None)
        options["stop"] = tuple(options.get("stop") or ())
        extra_json = json.dumps(extra, sort_keys=True) if extra else None
        return cls(
            frozen, float(temperature), int(max_tokens), cache_tag, **options, extra_body=extra_json
        )

    @classmethod
    def for_endpoint(
        cls,
        endpoint: EndpointConfig,
        messages: Sequence[dict[str, str]],
        cache_tag: str | None = None,
        response_format: str | None = None,
    ) -> ChatRequest:
        """A request with the endpoint's configured sampling and body options."""
        return cls.of(
            messages,
            endpoint.temperature,
            endpoint.max_tokens,
            cache_tag,
            stop=endpoint.stop,
            seed=endpoint.seed,
            extra_body=endpoint.extra_body,
            token_limit_field=endpoint.token_limit_field,
            response_format=response_format,
        )

    def without_response_format(self) -> ChatRequest:
        """The same request asking for plain text (for an endpoint that refused the format)."""
        return dataclasses.replace(self, response_format=None)

    @property
    def message_dicts(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]

    def _options(self) -> dict[str, Any]:
        """The set options, as sent (the token limit under its field's name)."""
        options: dict[str, Any] = {self.token_limit_field: self.max_tokens}
        if self.stop:
            options["stop"] = list(self.stop)
        if self.seed is not None:
            options["seed"] = self.seed
        return options | (json.loads(self.extra_body) if self.extra_body else {})

    def body(self, model: str) -> dict[str, Any]:
        """The JSON body sent to /chat/completions (the cache tag is never sent)."""
        body = {
            "model": model,
            "messages": self.message_dicts,
            "temperature": self.temperature,
            **self._options(),
        }
        if self.response_format is not None:
            body["response_format"] = json.loads(self.response_format)
        return body

    def payload(self) -> dict[str, Any]:
        """What is stored in `llm_calls.request_json`: messages and sampling parameters."""
        body: dict[str, Any] = {
            "messages": self.message_dicts,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **self._options(),
        }
        if self.cache_tag is not None:
            body["cache_tag"] = self.cache_tag
        if self.response_format is not None:
            body["response_format"] = json.loads(self.response_format)
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
    """The configured base URL (`sandbox` for the embedded server, whatever its port), or the
    endpoint's own `identity` when it has one (a served student, whatever its port)."""
    return getattr(endpoint, "identity", None) or endpoint.base_url.rstrip("/")


def call_id_for(endpoint: EndpointConfig, request: ChatRequest) -> str:
    """sha256 of canonical JSON of (endpoint, model, messages, sampling parameters)."""
    body = {"endpoint": endpoint_identity(endpoint), "model": endpoint.model, **request.payload()}
    return content_id(body)


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

    Holds the configured endpoint (its identity for call ids, its retry policy) and the URL
    its requests go to (`EndpointConfig.url`: the running sandbox's for `base_url: sandbox`);
    the API key goes into the client only.
    """

    def __init__(self, endpoint: EndpointConfig, *, max_concurrency: int | None = None) -> None:
        self.endpoint = endpoint
        self.url = endpoint.url
        self.retry = endpoint.retry
        self.max_concurrency = max_concurrency or endpoint.max_concurrency
        self._semaphore = asyncio.Semaphore(self.max_concurrency)
        self._secret = endpoint.api_key()
        self._client = openai.AsyncOpenAI(
            api_key=self._secret,
            base_url=self.url,
            max_retries=0,
            timeout=endpoint.timeout_s,
            http_client=(
                openai.DefaultAioHttpClient(timeout=endpoint.timeout_s)
                if endpoint.http_client == "aiohttp"
                else None
            ),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def _post(self, request: ChatRequest) -> tuple[Any, float]:
        started = time.perf_counter()
        async with asyncio.timeout(self.endpoint.timeout_s + 1.0):
            # client.post (the client's public verb for any route) skips create()'s
            # per-call parameter transformation, a third of the client's CPU per call, and
            # `cast_to=object` the reply's model classes (a tenth): the reply is its JSON.
            reply = await self._client.post(
                "/chat/completions", body=request.body(self.endpoint.model), cast_to=object
            )
        return reply, (time.perf_counter() - started) * 1000

    async def send_holding_slot(self, request: ChatRequest, call_id: str) -> CallResult:
        """Send with retries; return the outcome still holding the last attempt's slot.

        Each attempt takes a slot of the endpoint's semaphore; a failed attempt that is retried
        gives it back before the backoff, the last attempt keeps it: the caller frees it with
        `release_slot` once the result is handed on (see `calls._send_all`).
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

    def release_slot(self) -> None:
        """Free a slot kept by `send_holding_slot`."""
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
            return backoff_s(self.retry, n_attempts - 1), ""
        if asked_s > self.retry.max_retry_after_s:
            limit_s = self.retry.max_retry_after_s
            return None, f"Retry-After {asked_s:.0f} s exceeds {limit_s:.0f} s, {tries}"
        return asked_s * random.uniform(1.0, 1.2), ""  # as asked, spread a little

    def _result(self, call_id: str, reply: Any, latency_ms: float, n_attempts: int) -> CallResult:
        """The result of a reply's JSON (a dict; text when the server sent no JSON)."""
        choice, problem = first_choice(reply)
        if choice is None:
            return CallResult(call_id, n_attempts=n_attempts, error=f"malformed reply: {problem}")
        usage = reply.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        return CallResult(
            call_id,
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            cost_usd=call_cost_usd(self.endpoint, prompt_tokens, completion_tokens),
            n_attempts=n_attempts,
        )


def first_choice(reply: Any) -> tuple[dict[str, Any] | None, str]:
    """A chat completion's first choice with its message, or None and what is missing."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not choices or not isinstance(choices, list):
        return None, "no choices"
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        return None, "no message in the first choice"
    return choice, ""
