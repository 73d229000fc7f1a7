"""The sandbox arena: an OpenAI-compatible HTTP server hosting simulated models.

Endpoints:
- `GET /v1/models`: the models of `SandboxConfig.models`.
- `POST /v1/chat/completions`: non-streaming chat completions. `usage` counts whitespace-
  separated tokens: prompt = all message contents, completion = the reply (cut to
  `max_tokens`, finish_reason "length" when cut).
- `GET /sandbox/stats`: requests per model by outcome (ok, 429, 500, timeout, 400), and
  requests refused before reaching a model (bad body: 400, unknown model: 404).
- `GET /sandbox/requests`: distinct requests seen, and those that arrived more than once.
- `GET /sandbox/requests/log[?model=NAME]`: the bodies (model, messages, response_format)
  of the last `REQUEST_LOG_SIZE` well-formed chat requests, oldest first, exactly as received.
- `POST /sandbox/stats/reset`: zero the counts and the attempt counters, empty the log.

Errors have OpenAI's shape `{"error": {"message", "type", "param", "code"}}`: a bad body
is 400, an unknown model 404, a judge request the judge cannot read 400 (never an invented
verdict), a request to a simulated user (`role: user`) it cannot read 400, a `response_format` sent to a model with `accepts_response_format: false` 400 (as
endpoints without structured output answer).

Faults and determinism: the reply text depends only on (sandbox seed, model, messages)
(`sandbox/models.py`). The server counts how many times it has seen each (model, messages)
pair; the fault and latency draws are seeded from (seed, model, messages, attempt number),
so a retry of a faulted request is a fresh draw and can succeed, while a whole rerun on a
fresh server (or after a stats reset) sees the very same faults. Per attempt, with
u ~ U(0, 1): u < rate_429 is a 429 with `Retry-After: 1` (and `retry-after-ms`, 50-500);
then rate_500 is a 500; then rate_timeout stalls `timeout_delay_s` before answering.
Latency is latency_ms plus uniform jitter in [-latency_jitter_ms, +latency_jitter_ms]
(at least 0), slept with asyncio so requests run concurrently.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from collections import Counter, deque
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.config import SandboxConfig, SandboxModelConfig
from flywheel.sandbox.models import (
    UnparseableJudgeRequest,
    count_tokens,
    model_reply,
    request_key,
    seeded_rng,
    truncate_tokens,
)
from flywheel.sandbox.sim_user import UnparseableSimUserRequest

OUTCOMES: tuple[str, ...] = ("ok", "429", "500", "timeout", "400")
REFUSED_OUTCOMES: tuple[str, ...] = ("400", "404")
RETRY_AFTER_S = 1
RETRY_AFTER_MS_RANGE = (50, 500)
START_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 1.0
REQUEST_LOG_SIZE = 2000


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str


class ChatRequest(BaseModel):
    """The fields of a chat completion request the sandbox reads; others are accepted."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    stream: bool | None = False
    response_format: dict[str, Any] | None = None


def openai_error(
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error response in OpenAI's JSON shape."""
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


class SandboxState:
    """Request counts per model and outcome, and attempts per (model, request)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._refused: Counter[str] = Counter()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def log_request(self, body: dict[str, Any]) -> None:
        """Keep one request body (the last REQUEST_LOG_SIZE are kept)."""
        with self._lock:
            self._log.append(body)

    def request_log(self, model_name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self._log if model_name is None or b["model"] == model_name]

    def next_attempt(self, model_name: str, key: str) -> int:
        """0 for the first time this (model, request) is seen, then 1, 2, ..."""
        with self._lock:
            attempt = self._attempts[(model_name, key)]
            self._attempts[(model_name, key)] += 1
            return attempt

    def count(self, model_name: str, outcome: str) -> None:
        with self._lock:
            self._outcomes[(model_name, outcome)] += 1

    def count_refused(self, outcome: str) -> None:
        with self._lock:
            self._refused[outcome] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            models = {
                name: {o: self._outcomes[(name, o)] for o in OUTCOMES}
                for name in self.config.models
            }
            refused = {o: self._refused[o] for o in REFUSED_OUTCOMES}
        for counts in models.values():
            counts["total"] = sum(counts[o] for o in OUTCOMES)
        total = sum(c["total"] for c in models.values()) + sum(refused.values())
        return {"models": models, "refused": refused, "total": total}

    def repeated_requests(self) -> dict[str, Any]:
        """How many distinct requests each model got, and which ones arrived more than once."""
        with self._lock:
            attempts = dict(self._attempts)
        repeated = [
            {"model": model, "key": key, "count": count}
            for (model, key), count in sorted(attempts.items())
            if count > 1
        ]
        return {"n_distinct": len(attempts), "repeated": repeated}

    def reset(self) -> None:
        with self._lock:
            self._outcomes.clear()
            self._refused.clear()
            self._attempts.clear()
            self._log.clear()


def _fault(
    model_name: str, model: SandboxModelConfig, seed: int, key: str, attempt: int
) -> tuple[str | None, float, int]:
    """(fault or None, latency in s, Retry-After in ms) for one attempt of one request."""
    rng = seeded_rng(seed, model_name, f"fault-{attempt}", key)
    u = rng.random()
    fault = None
    if u < model.rate_429:
        fault = "429"
    elif u < model.rate_429 + model.rate_500:
        fault = "500"
    elif u < model.rate_429 + model.rate_500 + model.rate_timeout:
        fault = "timeout"
    jitter_ms = rng.uniform(-model.latency_jitter_ms, model.latency_jitter_ms)
    latency_s = max(0.0, model.latency_ms + jitter_ms) / 1000.0
    return fault, latency_s, rng.randint(*RETRY_AFTER_MS_RANGE)


def _completion_body(
    model_name: str, key: str, reply: str, messages: list[dict], max_tokens: int | None
) -> dict[str, Any]:
    finish_reason = "stop"
    if max_tokens is not None:
        reply, cut = truncate_tokens(reply, max_tokens)
        finish_reason = "length" if cut else "stop"
    prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
    completion_tokens = count_tokens(reply)
    return {
        "id": f"chatcmpl-{key[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def create_app(config: SandboxConfig) -> FastAPI:
    """The sandbox's FastAPI application (state in `app.state.sandbox`)."""
    app = FastAPI(title="flywheel sandbox", docs_url=None, redoc_url=None)
    state = SandboxState(config)
    app.state.sandbox = state

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": f"sandbox-{m.role}"}
            for name, m in config.models.items()
        ]
        return {"object": "list", "data": data}

    @app.get("/sandbox/stats")
    async def stats() -> dict[str, Any]:
        return state.snapshot()

    @app.get("/sandbox/requests")
    async def requests() -> dict[str, Any]:
        return state.repeated_requests()

    @app.get("/sandbox/requests/log")
    async def request_log(model: str | None = None) -> dict[str, Any]:
        return {"requests": state.request_log(model)}

    @app.post("/sandbox/stats/reset")
    async def reset_stats() -> dict[str, Any]:
        state.reset()
        return state.snapshot()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        return await _chat_completion(config, state, request)

    return app


async def _chat_completion(
    config: SandboxConfig, state: SandboxState, request: Request
) -> JSONResponse:
    """One chat completion: validate, reply as the named model, with its injected faults."""
    try:
        body = ChatRequest.model_validate(await request.json())
    except (ValueError, ValidationError) as e:  # JSON decode errors are ValueErrors
        state.count_refused("400")
        return openai_error(400, f"invalid request body: {e}", "invalid_request_error")
    refused = _refusal(config, state, body)
    if refused is not None:
        return refused
    messages = [{"role": m.role, "content": m.content} for m in body.messages]
    state.log_request(
        {"model": body.model, "messages": messages, "response_format": body.response_format}
    )
    model = config.models[body.model]
    try:
        reply = model_reply(body.model, model, config.seed, messages, body.response_format)
    except UnparseableJudgeRequest as e:
        state.count(body.model, "400")
        return openai_error(400, str(e), "invalid_request_error", "unparseable_judge_request")
    except UnparseableSimUserRequest as e:
        state.count(body.model, "400")
        return openai_error(400, str(e), "invalid_request_error", "unparseable_user_request")
    key = request_key(messages)
    faulted = await _injected_fault(config, state, body.model, key)
    if faulted is not None:
        return faulted
    max_tokens = body.max_completion_tokens or body.max_tokens
    return JSONResponse(_completion_body(body.model, key, reply, messages, max_tokens))


def _refusal(config: SandboxConfig, state: SandboxState, body: ChatRequest) -> JSONResponse | None:
    """The error for a well-formed request the sandbox will not answer (an unknown model, a
    stream, a `response_format` its model does not accept), counted; None to answer it."""
    if body.model not in config.models:
        state.count_refused("404")
        known = ", ".join(config.models)
        return openai_error(
            404,
            f"model {body.model!r} does not exist; sandbox models: {known}",
            "invalid_request_error",
            "model_not_found",
        )
    if body.stream:
        state.count(body.model, "400")
        return openai_error(
            400, "the sandbox does not stream; send stream=false", "invalid_request_error"
        )
    if body.response_format is not None and not config.models[body.model].accepts_response_format:
        state.count(body.model, "400")
        return openai_error(
            400,
            f"model {body.model!r} does not support response_format; send the request without it",
            "invalid_request_error",
            "unsupported_parameter",
        )
    return None


async def _injected_fault(
    config: SandboxConfig, state: SandboxState, model_name: str, key: str
) -> JSONResponse | None:
    """This attempt's draw (counted, its latency slept): the 429 or 500 error to send, or None
    to answer (after `timeout_delay_s` more when the draw is a timeout)."""
    attempt = state.next_attempt(model_name, key)
    model = config.models[model_name]
    fault, latency_s, retry_after_ms = _fault(model_name, model, config.seed, key, attempt)
    state.count(model_name, fault or "ok")
    await asyncio.sleep(latency_s)
    if fault == "429":
        headers = {"Retry-After": str(RETRY_AFTER_S), "retry-after-ms": str(retry_after_ms)}
        return openai_error(
            429,
            "rate limit reached (injected by the sandbox)",
            "rate_limit_error",
            "rate_limit_exceeded",
            headers,
        )
    if fault == "500":
        return openai_error(500, "internal server error (injected by the sandbox)", "server_error")
    if fault == "timeout":
        await asyncio.sleep(config.timeout_delay_s)
    return None


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; proto IPPROTO_TCP so asyncio sets TCP_NODELAY on connections
    (with proto 0 it does not, and every reply waits ~40 ms for a delayed ACK)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class SandboxServer:
    """A sandbox server running in a background thread; a context manager that stops it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.app = create_app(config)
        self._socket = _bind(config.host, config.port)
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level="warning",
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
                access_log=False,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"sandbox-{self.port}",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. http://127.0.0.1:8000/v1."""
        return f"http://{_url_host(self.config.host)}:{self.port}/v1"

    @property
    def state(self) -> SandboxState:
        return self.app.state.sandbox

    def start(self, timeout_s: float = START_TIMEOUT_S) -> SandboxServer:
        """Start serving and wait until the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the sandbox server did not start on {self.base_url} within {timeout_s} s"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (in-flight requests get SHUTDOWN_GRACE_S to finish)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=SHUTDOWN_GRACE_S + 5.0)
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self if self._thread.is_alive() else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_sandbox(config: SandboxConfig) -> SandboxServer:
    """Start the sandbox on `config.host` (`config.port`, a free port when 0) and wait for it."""
    return SandboxServer(config).start()


def serve_forever(config: SandboxConfig, port: int) -> None:
    """Serve the sandbox in the foreground on `port` (0: a free one) until interrupted."""
    sock = _bind(config.host, port)
    url = f"http://{_url_host(config.host)}:{sock.getsockname()[1]}/v1"
    print(f"sandbox serving {', '.join(config.models)} at {url}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    server.run(sockets=[sock])
