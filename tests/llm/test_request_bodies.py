"""Per-endpoint request bodies (extra_body, max_completion_tokens, stop, seed) on the wire and
in the call-cache key, and a 400 recorded once with the server's own message."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.config import EndpointConfig, SandboxConfig, SandboxModelConfig, WarehouseConfig
from flywheel.llm.calls import call_endpoint
from flywheel.llm.client import ChatRequest, call_id_for
from flywheel.sandbox.server import start_sandbox
from flywheel.warehouse.store import connect

MESSAGES = [{"role": "user", "content": "What is 2 plus 3?"}]


def endpoint(**options: object) -> EndpointConfig:
    return EndpointConfig(
        **{"name": "strong", "model": "sandbox-strong", "max_tokens": 64} | options
    )


def test_unset_options_leave_the_body_and_the_call_id_as_before() -> None:
    request = ChatRequest.for_endpoint(endpoint(), MESSAGES)
    assert request.body("m") == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.0,
        "max_tokens": 64,
    }
    assert set(request.payload()) == {"messages", "temperature", "max_tokens"}
    plain = ChatRequest.of(MESSAGES, 0.0, 64)  # how every stored call id was made
    assert call_id_for(endpoint(), request) == call_id_for(endpoint(), plain)


def test_set_options_are_sent_and_change_the_call_id() -> None:
    configured = endpoint(
        token_limit_field="max_completion_tokens",
        stop=["</answer>"],
        seed=7,
        extra_body={"reasoning_effort": "low", "top_k": 1},
    )
    request = ChatRequest.for_endpoint(configured, MESSAGES)
    body = request.body("o3")
    assert "max_tokens" not in body and body["max_completion_tokens"] == 64
    assert body["stop"] == ["</answer>"] and body["seed"] == 7
    assert body["reasoning_effort"] == "low" and body["top_k"] == 1
    plain = ChatRequest.for_endpoint(endpoint(), MESSAGES)
    assert call_id_for(configured, request) != call_id_for(endpoint(), plain)
    assert json.loads(json.dumps(request.payload()))["max_completion_tokens"] == 64


def test_max_completion_tokens_limits_the_reply_and_a_400_is_recorded_once(
    tmp_path: Path,
) -> None:
    """The sandbox reads max_completion_tokens; it refuses `stream: true` (sent through
    extra_body) with a 400, which is not retried and is stored with the server's message."""
    warehouse = WarehouseConfig(path=str(tmp_path / "w.duckdb"))
    sandbox = SandboxConfig(models={"sandbox-strong": SandboxModelConfig(verbosity="verbose")})
    limited = endpoint(token_limit_field="max_completion_tokens", max_tokens=3)
    streaming = endpoint(extra_body={"stream": True}, max_retries=4)
    request = ChatRequest.for_endpoint(limited, MESSAGES)
    refused = ChatRequest.for_endpoint(streaming, MESSAGES)
    with start_sandbox(sandbox) as server:
        [cut], _ = call_endpoint(
            limited.at_sandbox(server.base_url), [request], warehouse=warehouse
        )
        [failed], stats = call_endpoint(
            streaming.at_sandbox(server.base_url), [refused], warehouse=warehouse
        )
    assert cut.ok and cut.finish_reason == "length" and cut.completion_tokens == 3
    assert not failed.ok and failed.n_attempts == 1 and stats.n_failed == 1
    assert "HTTP 400" in failed.error and "the sandbox does not stream" in failed.error
    with connect(warehouse.path, read_only=True) as con:
        [(error, n_attempts)] = con.execute(
            "select error, n_attempts from llm_calls where error is not null"
        ).fetchall()
    assert "the sandbox does not stream" in error and n_attempts == 1
