"""llm/client.py, llm/calls.py and the row writer against a tiny scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flywheel.config import EndpointConfig, RetryConfig, WarehouseConfig
from flywheel.llm.calls import call_endpoint
from flywheel.llm.client import ChatRequest, call_id_for
from flywheel.warehouse.store import connect
from flywheel.warehouse.writer import RowWriter

REPO_ROOT = Path(__file__).resolve().parents[2]

FAST_RETRY = RetryConfig(base_delay_s=0.01, max_delay_s=0.05, max_retry_after_s=5.0)
# the call id of `requests_for("id", 1)[0]` to the sandbox's `strong`, as every earlier version
# of the client computed it: a resumed run finds its cached calls
CALL_ID = "716421752c35f058c21c33e690540be2c16294c27b4008a71e81087aad073b37"


@dataclass
class ScriptedServer:
    """Replies by model name: `ok`, `slow`, `bad` (400), `always-500`, `flaky-429`,
    `flaky-500`, `slow-once` (the first request of each content stalls), `long-wait` (429 with a
    Retry-After of an hour), `no-choices`, `no-message` and `no-usage` (a reply lacking that
    part). Counts requests and the most in flight at once, per model."""

    base_url: str = ""
    n_requests: Counter = field(default_factory=Counter)
    in_flight: Counter = field(default_factory=Counter)
    max_in_flight: Counter = field(default_factory=Counter)
    healthy: bool = False  # when true every model answers ok
    auth_headers: list[str] = field(default_factory=list)
    on_request: Callable[[str], None] | None = None  # called with the model as a request arrives

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> JSONResponse:
            body = await request.json()
            model, content = body["model"], body["messages"][-1]["content"]
            self.auth_headers.append(request.headers.get("authorization", ""))
            if self.on_request is not None:
                self.on_request(model)
            self.n_requests[model] += 1
            seen = self.n_requests[(model, content)]
            self.n_requests[(model, content)] += 1
            self.in_flight[model] += 1
            self.max_in_flight[model] = max(self.max_in_flight[model], self.in_flight[model])
            try:
                return await self._reply(model, content, seen)
            finally:
                self.in_flight[model] -= 1

        return app

    async def _reply(self, model: str, content: str, seen: int) -> JSONResponse:
        def error(status: int, headers: dict[str, str] | None = None) -> JSONResponse:
            body = {"error": {"message": f"scripted {status}", "type": "x", "code": status}}
            return JSONResponse(body, status_code=status, headers=headers)

        if model == "echo-key":  # like OpenAI's 401, which quotes the (masked) key
            key = self.auth_headers[-1].removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key} ({key[:5]}***{key[-4:]})"
            body = {"error": {"message": message, "type": "invalid_request_error", "code": 401}}
            return JSONResponse(body, status_code=401)
        if not self.healthy:
            if model == "bad":
                return error(400)
            if model == "always-500":
                return error(500)
            if model == "flaky-429" and seen < 1:
                return error(429, {"retry-after": "0.3"})
            if model == "long-wait":
                return error(429, {"retry-after": "3600"})
            if model == "flaky-500" and seen < 2:
                return error(500)
            if model == "slow-once" and seen < 1:
                await asyncio.sleep(2.0)
        if model == "slow":
            await asyncio.sleep(0.05)
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {content}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        if model == "no-choices":
            reply["choices"] = []
        elif model == "no-message":
            del reply["choices"][0]["message"]
        elif model == "no-usage":
            del reply["usage"]
        return JSONResponse(reply)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    config = uvicorn.Config(
        scripted.app(), host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    scripted.base_url = f"http://127.0.0.1:{port}/v1"
    yield scripted
    uvicorn_server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseConfig:
    return WarehouseConfig(path=str(tmp_path / "calls.duckdb"), lock_timeout_s=5)


def endpoint_for(server: ScriptedServer, model: str, **updates: object) -> EndpointConfig:
    fields: dict[str, object] = {
        "name": f"test-{model}",
        "base_url": server.base_url,
        "model": model,
        "timeout_s": 5.0,
        "max_retries": 3,
        "retry": FAST_RETRY,
        **updates,
    }
    return EndpointConfig(**fields)


def requests_for(tag: str, n: int) -> list[ChatRequest]:
    return [
        ChatRequest.of([{"role": "user", "content": f"{tag} question {i}"}], 0.0, 32)
        for i in range(n)
    ]


def stored_calls(warehouse: WarehouseConfig) -> list[tuple]:
    with connect(warehouse.path) as con:
        return con.execute(
            "select call_id, n_attempts, error, response_text from llm_calls order by call_id"
        ).fetchall()


def test_429_is_retried_after_the_servers_retry_after(server, warehouse):
    endpoint = endpoint_for(server, "flaky-429")
    started = time.perf_counter()
    (result,), stats = call_endpoint(endpoint, requests_for("429", 1), warehouse=warehouse)
    elapsed_s = time.perf_counter() - started
    assert result.ok and result.n_attempts == 2
    assert elapsed_s >= 0.3  # waited at least the Retry-After, not the 10 ms backoff
    assert stats.n_sent == 1 and stats.n_failed == 0


def test_a_retry_after_beyond_the_limit_ends_the_call_as_an_error(server, warehouse):
    (result,), _ = call_endpoint(
        endpoint_for(server, "long-wait"),
        requests_for("wait", 1),
        warehouse=warehouse,
    )
    assert not result.ok and "Retry-After 3600" in result.error and result.n_attempts == 1


def test_500_is_retried_until_it_succeeds(server, warehouse):
    (result,), _ = call_endpoint(
        endpoint_for(server, "flaky-500"),
        requests_for("500", 1),
        warehouse=warehouse,
    )
    assert result.ok and result.n_attempts == 3


def test_400_is_not_retried(server, warehouse):
    before = server.n_requests["bad"]
    (result,), stats = call_endpoint(
        endpoint_for(server, "bad"), requests_for("400", 1), warehouse=warehouse
    )
    assert not result.ok and result.n_attempts == 1 and "HTTP 400" in result.error
    assert server.n_requests["bad"] - before == 1
    assert stats.n_failed == 1


def test_timeout_is_retried(server, warehouse):
    endpoint = endpoint_for(server, "slow-once", timeout_s=0.3)
    (result,), _ = call_endpoint(endpoint, requests_for("timeout", 1), warehouse=warehouse)
    assert result.ok and result.n_attempts == 2


def test_concurrency_limit_is_respected(server, warehouse):
    endpoint = endpoint_for(server, "slow", max_concurrency=4)
    results, stats = call_endpoint(endpoint, requests_for("conc", 24), warehouse=warehouse)
    assert all(r.ok for r in results) and stats.n_sent == 24
    assert server.max_in_flight["slow"] == 4


def test_cache_hit_sends_nothing_and_adds_no_rows(server, warehouse):
    endpoint = endpoint_for(server, "ok")
    requests = requests_for("cache", 10) + requests_for("cache", 2)  # 2 repeats inside the batch
    first, stats_first = call_endpoint(endpoint, requests, warehouse=warehouse)
    n_sent_before = server.n_requests["ok"]
    rows_before = stored_calls(warehouse)
    second, stats_second = call_endpoint(endpoint, requests, warehouse=warehouse)
    assert stats_first.n_sent == 10 and len(first) == 12
    assert server.n_requests["ok"] == n_sent_before
    assert stats_second.n_sent == 0 and stats_second.n_cached == 12
    assert [r.text for r in second] == [r.text for r in first]
    assert stored_calls(warehouse) == rows_before and len(rows_before) == 10


def test_failed_call_is_stored_as_error_then_retried_and_replaced_on_rerun(server, warehouse):
    endpoint = endpoint_for(server, "always-500", max_retries=2)
    requests = requests_for("err", 3)
    results, stats = call_endpoint(endpoint, requests, warehouse=warehouse)
    assert all(not r.ok for r in results) and stats.n_failed == 3
    rows = stored_calls(warehouse)
    assert len(rows) == 3 and all(n == 3 and "HTTP 500" in err for _, n, err, _ in rows)
    server.healthy = True
    try:
        results, stats = call_endpoint(endpoint, requests, warehouse=warehouse)
    finally:
        server.healthy = False
    assert all(r.ok for r in results) and stats.n_sent == 3
    rows = stored_calls(warehouse)
    assert len(rows) == 3 and all(
        err is None and text.startswith("echo") for _, _, err, text in rows
    )
    _, stats = call_endpoint(endpoint, requests, warehouse=warehouse)
    assert stats.n_sent == 0 and stats.n_cached == 3  # successes are never sent again


def test_tokens_latency_and_cost_are_recorded(server, warehouse):
    endpoint = endpoint_for(server, "ok", price_in_per_mtok=2.0, price_out_per_mtok=8.0)
    (result,), stats = call_endpoint(endpoint, requests_for("cost", 1), warehouse=warehouse)
    expected_usd = 10 * 2.0 / 1e6 + 5 * 8.0 / 1e6
    assert result.cost_usd == pytest.approx(expected_usd) and stats.cost_usd == pytest.approx(
        expected_usd
    )
    with connect(warehouse.path) as con:
        row = con.execute(
            "select prompt_tokens, completion_tokens, latency_ms, cost_usd, endpoint, model, "
            "request_json from llm_calls"
        ).fetchone()
    assert row[:2] == (10, 5) and row[2] > 0 and row[3] == pytest.approx(expected_usd)
    assert row[4:6] == ("test-ok", "ok") and '"max_tokens": 32' in row[6]


def test_a_reply_missing_its_choices_or_message_is_an_error_naming_the_missing_part(
    server, warehouse
):
    (no_choices,), _ = call_endpoint(
        endpoint_for(server, "no-choices"), requests_for("shape", 1), warehouse=warehouse
    )
    (no_message,), _ = call_endpoint(
        endpoint_for(server, "no-message"), requests_for("shape", 1), warehouse=warehouse
    )
    assert no_choices.error == "malformed reply: no choices" and no_choices.n_attempts == 1
    assert no_message.error == "malformed reply: no message in the first choice"
    stored_errors = sorted(err for _, _, err, _ in stored_calls(warehouse))
    assert stored_errors == sorted([no_choices.error, no_message.error])


def test_a_reply_without_usage_has_no_tokens_and_no_cost(server, warehouse):
    endpoint = endpoint_for(server, "no-usage", price_in_per_mtok=2.0)
    (result,), _ = call_endpoint(endpoint, requests_for("usage", 1), warehouse=warehouse)
    assert result.ok and result.text == "echo: usage question 0"
    assert result.finish_reason == "stop"
    assert (result.prompt_tokens, result.completion_tokens, result.cost_usd) == (None, None, None)


def test_the_api_key_is_sent_but_never_stored(server, warehouse, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_TEST_KEY", "sk-planted-endpoint-key-0001")
    endpoint = endpoint_for(server, "ok", api_key_env="FLYWHEEL_TEST_KEY")
    call_endpoint(endpoint, requests_for("key", 2), warehouse=warehouse)
    assert "Bearer sk-planted-endpoint-key-0001" in server.auth_headers
    assert b"sk-planted-endpoint-key-0001" not in Path(warehouse.path).read_bytes()
    with connect(warehouse.path) as con:
        dumped = str(con.execute("select * from llm_calls").fetchall())
    assert "sk-planted" not in dumped


def test_call_id_ignores_the_sandbox_port_and_separates_cache_tags():
    endpoint = EndpointConfig(name="strong", base_url="sandbox", model="sandbox-strong")
    request = requests_for("id", 1)[0]
    resolved = endpoint.at_sandbox("http://127.0.0.1:5555/v1")
    assert resolved.url == "http://127.0.0.1:5555/v1" and resolved.base_url == "sandbox"
    other_port = endpoint.at_sandbox("http://127.0.0.1:6666/v1")
    slow_retry = resolved.model_copy(update={"retry": RetryConfig(base_delay_s=9.0)})
    assert call_id_for(resolved, request) == call_id_for(endpoint, request) == CALL_ID
    assert call_id_for(other_port, request) == call_id_for(slow_retry, request) == CALL_ID
    tagged = ChatRequest.of(request.message_dicts, request.temperature, request.max_tokens, "v1")
    assert call_id_for(endpoint, request) != call_id_for(endpoint, tagged)
    with pytest.raises(ValueError, match="uses the sandbox but no sandbox is running"):
        _ = endpoint.url


def test_a_key_echoed_in_an_error_reply_is_redacted(server, warehouse, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_TEST_KEY", "sk-planted-endpoint-key-0002")
    endpoint = endpoint_for(server, "echo-key", api_key_env="FLYWHEEL_TEST_KEY")
    (result,), _ = call_endpoint(endpoint, requests_for("echo", 1), warehouse=warehouse)
    assert not result.ok and "HTTP 401" in result.error and result.n_attempts == 1
    assert "planted" not in result.error and "0002" not in result.error
    assert b"planted-endpoint-key" not in Path(warehouse.path).read_bytes()


def test_sent_calls_not_yet_committed_are_at_most_twice_max_concurrency(
    server, warehouse, monkeypatch
):
    """At every moment, requests sent but not yet stored are at most 2 x max_concurrency
    (on the wire, and answered but waiting for their commit): what a SIGKILL can lose."""
    max_concurrency = 4
    lock = threading.Lock()
    counts = {"arrived": 0, "committed": 0, "most_unstored": 0}
    write_batch = RowWriter._write_batch

    def slow_write_batch(self, con, rows, held):  # slow flushes: results pile up meanwhile
        time.sleep(0.03)
        write_batch(self, con, rows, held)
        with lock:
            counts["committed"] += len(rows.get("llm_calls", []))

    def on_request(model: str) -> None:
        if model == "slow":
            with lock:
                counts["arrived"] += 1
                unstored = counts["arrived"] - counts["committed"]
                counts["most_unstored"] = max(counts["most_unstored"], unstored)

    monkeypatch.setattr(RowWriter, "_write_batch", slow_write_batch)
    monkeypatch.setattr(server, "on_request", on_request)
    endpoint = endpoint_for(server, "slow", max_concurrency=max_concurrency)
    results, stats = call_endpoint(endpoint, requests_for("durable", 40), warehouse=warehouse)
    assert all(r.ok for r in results) and stats.n_sent == 40
    assert counts["arrived"] == counts["committed"] == 40
    assert counts["most_unstored"] <= 2 * max_concurrency
    assert len(stored_calls(warehouse)) == 40


def test_a_stalled_commit_lets_one_more_round_of_calls_through_then_holds_them(
    server, warehouse, monkeypatch
):
    """A slow commit does not hold the endpoint's slots (the next calls are sent meanwhile),
    but the calls answered and not committed never pass 2 x max_concurrency."""
    max_concurrency = 3
    release_commits = threading.Event()
    write_batch = RowWriter._write_batch

    def stalled_write_batch(self, con, rows, held):
        assert release_commits.wait(timeout=120), "the test never released the commits"
        write_batch(self, con, rows, held)

    monkeypatch.setattr(RowWriter, "_write_batch", stalled_write_batch)
    endpoint = endpoint_for(server, "ok", max_concurrency=max_concurrency)
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["results"] = call_endpoint(endpoint, requests_for("stall", 20), warehouse=warehouse)

    n_before = server.n_requests["ok"]  # the server serves the whole module
    caller = threading.Thread(target=run)
    caller.start()
    deadline = time.monotonic() + 60
    while server.n_requests["ok"] - n_before < 2 * max_concurrency:
        assert time.monotonic() < deadline, "the calls stopped before the backlog was full"
        time.sleep(0.01)
    time.sleep(0.5)  # more would have been sent by now if the backlog did not hold them
    n_sent_while_stalled = server.n_requests["ok"] - n_before
    release_commits.set()
    caller.join(timeout=120)
    results, stats = outcome["results"]
    assert n_sent_while_stalled == 2 * max_concurrency
    assert all(r.ok for r in results) and stats.n_sent == 20
    assert len(stored_calls(warehouse)) == 20
