"""The sandbox server through the real openai client, on 127.0.0.1."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from flywheel.config import SandboxConfig, SandboxModelConfig, load_config
from flywheel.evaluators.judge_requests import build_judge_messages
from flywheel.evaluators.protocols.scores import parse_verdict
from flywheel.evaluators.skills import check_answer, render_answer
from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.sandbox.skills import generate_tasks, wrong_answer
from tests.conftest import REPO_ROOT

N_PROMPTS = 500
THREADS = 32


def _sandbox_config() -> SandboxConfig:
    """configs/demo.yaml's sandbox plus faulty and verbose models for the tests below."""
    demo = load_config(REPO_ROOT / "configs" / "demo.yaml").sandbox
    faulty = {
        "flaky-429": SandboxModelConfig(rate_429=0.5, verbosity="terse"),
        "flaky-500": SandboxModelConfig(rate_500=0.5, verbosity="terse"),
        "stalling": SandboxModelConfig(rate_timeout=1.0),
        "wordy": SandboxModelConfig(verbosity="verbose"),
    }
    return demo.model_copy(update={"models": {**demo.models, **faulty}, "timeout_delay_s": 1.5})


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with start_sandbox(_sandbox_config()) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> openai.OpenAI:
    httpx.post(server.base_url.removesuffix("/v1") + "/sandbox/stats/reset")
    return openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)


def _stats(server: SandboxServer) -> dict[str, Any]:
    return httpx.get(server.base_url.removesuffix("/v1") + "/sandbox/stats").json()


def _ask(client: openai.OpenAI, model: str, prompt: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    return reply.choices[0].message.content or ""


def _in_parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(fn, items))


def test_models_endpoint_lists_every_configured_model(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"sandbox-strong", "sandbox-mixed", "sandbox-judge", "flaky-429"} <= ids


def test_server_binds_a_free_port_on_localhost(server: SandboxServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0


@pytest.mark.parametrize("model", ["sandbox-strong", "sandbox-mixed"])
def test_each_reference_answers_with_usage(client: openai.OpenAI, model: str) -> None:
    task = generate_tasks(1, seed=3)[0]
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": task.prompt}]
    )
    text = reply.choices[0].message.content or ""
    assert check_answer(task.prompt, text) is not None and text.splitlines()[-1].startswith(
        "Answer:"
    )
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens == len(task.prompt.split())
    assert usage.completion_tokens == len(text.split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert _ask(client, model, "Tell me about the sea.")  # non-skill prompts get a reply


def test_reference_accuracy_matches_configuration_over_500_prompts(
    client: openai.OpenAI,
) -> None:
    tasks = generate_tasks(N_PROMPTS, seed=21)
    started = time.monotonic()
    strong = _in_parallel(lambda t: _ask(client, "sandbox-strong", t.prompt), tasks)
    mixed = _in_parallel(lambda t: _ask(client, "sandbox-mixed", t.prompt), tasks)
    assert time.monotonic() - started < 30
    strong_accuracy = (
        sum(check_answer(t.prompt, a) for t, a in zip(tasks, strong, strict=True)) / N_PROMPTS
    )
    assert abs(strong_accuracy - 0.95) <= 0.05
    arithmetic = [(t, a) for t, a in zip(tasks, mixed, strict=True) if t.skill == "arithmetic"]
    arithmetic_accuracy = sum(check_answer(t.prompt, a) for t, a in arithmetic) / len(arithmetic)
    assert arithmetic_accuracy < 0.6  # skill_accuracy.arithmetic = 0.3 overrides accuracy 0.9


def test_judge_agrees_with_checkers_when_exactly_one_answer_is_right(
    client: openai.OpenAI,
) -> None:
    rng = random.Random(0)
    games = []
    for task in generate_tasks(N_PROMPTS, seed=22):
        right = render_answer(task.answer, rng.choice(["terse", "normal", "verbose"]), rng)
        wrong = render_answer(wrong_answer(task, rng), rng.choice(["terse", "normal"]), rng)
        right_first = rng.random() < 0.5
        pair = (right, wrong) if right_first else (wrong, right)
        games.append((build_judge_messages(task.prompt, *pair), right_first))

    def judge(game: tuple[list[dict[str, str]], bool]) -> bool:
        reply = client.chat.completions.create(
            model="sandbox-judge", messages=game[0], max_tokens=256
        )
        verdict = parse_verdict(reply.choices[0].message.content or "")
        return verdict.winner == ("first" if game[1] else "second")

    agreement = sum(_in_parallel(judge, games)) / len(games)
    assert agreement >= 0.9


def test_unreadable_judge_request_gets_400_not_a_verdict(
    client: openai.OpenAI, server: SandboxServer
) -> None:
    with pytest.raises(openai.BadRequestError, match="build_judge_messages") as raised:
        _ask(client, "sandbox-judge", "Which of these two answers is better? [[A]]")
    assert raised.value.status_code == 400
    assert _stats(server)["models"]["sandbox-judge"]["400"] == 1


def test_replies_are_deterministic_for_the_same_request(client: openai.OpenAI) -> None:
    for task in generate_tasks(20, seed=4):
        assert _ask(client, "sandbox-mixed", task.prompt) == _ask(
            client, "sandbox-mixed", task.prompt
        )
    messages = build_judge_messages("What is 2 + 2?", "Answer: 4", "Answer: 5")
    replies = {
        client.chat.completions.create(model="sandbox-judge", messages=messages)
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(replies) == 1


def test_injected_429_carries_retry_after_and_a_retry_can_succeed(
    client: openai.OpenAI,
) -> None:
    prompts = [t.prompt for t in generate_tasks(40, seed=5)]
    limited = []
    for prompt in prompts:
        try:
            _ask(client, "flaky-429", prompt)
        except openai.RateLimitError as e:
            limited.append(prompt)
            assert e.response.headers["Retry-After"] == "1"
            assert e.body["type"] == "rate_limit_error"  # type: ignore[index]
    assert 5 <= len(limited) <= 35
    for prompt in limited:  # each attempt is a fresh draw: retrying gets through
        for _attempt in range(20):
            try:
                _ask(client, "flaky-429", prompt)
                break
            except openai.RateLimitError:
                continue
        else:
            pytest.fail(f"20 retries of {prompt!r} were all rate limited")


def _outcomes(client: openai.OpenAI, prompt: str, attempts: int) -> list[str]:
    outcomes = []
    for _ in range(attempts):
        try:
            _ask(client, "flaky-500", prompt)
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("500")
    return outcomes


def test_faults_differ_per_attempt_but_a_rerun_reproduces_them(
    client: openai.OpenAI, server: SandboxServer
) -> None:
    prompts = [t.prompt for t in generate_tasks(5, seed=6)]
    first_run = [_outcomes(client, p, 6) for p in prompts]
    assert {"ok", "500"} <= {o for run in first_run for o in run}
    httpx.post(server.base_url.removesuffix("/v1") + "/sandbox/stats/reset")
    assert [_outcomes(client, p, 6) for p in prompts] == first_run


def test_injected_timeout_stalls_past_the_client_timeout(
    client: openai.OpenAI, server: SandboxServer
) -> None:
    impatient = client.with_options(timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        _ask(impatient, "stalling", "What is 2 + 2?")
    assert _stats(server)["models"]["stalling"]["timeout"] == 1


def test_unknown_model_and_bad_body_get_openai_style_errors(
    client: openai.OpenAI, server: SandboxServer
) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        _ask(client, "gpt-nothing", "hi")
    bad = httpx.post(f"{server.base_url}/chat/completions", content=b"{not json")
    assert bad.status_code == 400 and "message" in bad.json()["error"]
    no_messages = httpx.post(f"{server.base_url}/chat/completions", json={"model": "x"})
    assert no_messages.status_code == 400


def test_stats_count_every_request_by_outcome(client: openai.OpenAI, server: SandboxServer) -> None:
    prompts = [t.prompt for t in generate_tasks(30, seed=7)]
    _in_parallel(lambda p: _ask(client, "sandbox-strong", p), prompts)
    failures = 0
    for prompt in prompts:
        try:
            _ask(client, "flaky-500", prompt)
        except openai.InternalServerError:
            failures += 1
    with pytest.raises(openai.BadRequestError):
        _ask(client, "sandbox-judge", "not a judge prompt")
    with pytest.raises(openai.NotFoundError):
        _ask(client, "gpt-nothing", "hi")
    stats = _stats(server)
    assert stats["models"]["sandbox-strong"] == {
        "ok": 30,
        "429": 0,
        "500": 0,
        "timeout": 0,
        "400": 0,
        "total": 30,
    }
    flaky = stats["models"]["flaky-500"]
    assert (flaky["500"], flaky["ok"], flaky["total"]) == (failures, 30 - failures, 30)
    assert stats["models"]["sandbox-judge"]["400"] == 1
    assert stats["refused"] == {"400": 0, "404": 1}
    assert stats["total"] == 30 + 30 + 1 + 1


def test_max_tokens_cuts_the_reply(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="wordy",
        messages=[{"role": "user", "content": "Reverse the word 'apple'."}],
        max_tokens=3,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_stop_releases_the_port() -> None:
    config = SandboxConfig(models={"m": SandboxModelConfig()})
    with start_sandbox(config) as running:
        url = running.base_url
        assert httpx.get(f"{url}/models").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=1)
