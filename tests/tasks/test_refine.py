"""The "refine" SFT rule in the mine step, against the sandbox server on the smoke config."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.config import Config, RetryConfig, resolve_sandbox_endpoints
from flywheel.evaluators.skills import check_answer
from flywheel.flows.retry import FailedCalls, rounds_with_failed_calls
from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.sandbox.skills import generate_tasks, systematic_slip
from flywheel.tasks.mine import mine_round, training_rows
from flywheel.tasks.report import round_markdown
from flywheel.warehouse.export import export_rows
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in

ROUND_ID = 1
N_PROMPTS = 12
FAST_RETRY = RetryConfig(base_delay_s=0.01, max_delay_s=0.05, max_retry_after_s=5.0)
REFINE = {"sft_rule": "refine"}


def refine_config(tmp_path: Path, fault_rates: dict | None = None, **mining: object) -> Config:
    """The smoke config mining SFT by the refine rule (the references with `fault_rates`)."""
    base = load_config_in(tmp_path, "smoke")
    models = {name: m.model_dump() for name, m in base.sandbox.models.items()}
    for model in models.values():
        if model["role"] == "reference":
            model.update(fault_rates or {})
    training = base.model_dump()["training"]
    training["mining"] |= REFINE | mining
    return load_config_in(tmp_path, "smoke", sandbox={"models": models}, training=training)


def live(config: Config, server: SandboxServer) -> Config:
    """`config` resolved to the running sandbox, its references retrying after short waits."""
    references = [ref.model_copy(update={"retry": FAST_RETRY}) for ref in config.references]
    fast = config.model_copy(update={"references": references})
    return resolve_sandbox_endpoints(fast, server.base_url)


def store_lost_battles(config: Config) -> list[dict]:
    """Skill prompts the champion v0 answered with its slip (`Answer: 355` for 35) and lost
    to ref:strong by a gap of 6 (an SFT battle); ref:mixed lost to the champion."""
    prompts, responses, battles = [], [], []
    tasks = generate_tasks(N_PROMPTS, 7)
    for i, task in enumerate(tasks):
        prompt_id = f"p{i:03d}"
        messages = [{"role": "user", "content": task.prompt}]
        prompts.append(
            {
                "prompt_id": prompt_id,
                "messages": json.dumps(messages),
                "prompt_text": task.prompt,
                "source": "test",
                "category": task.skill,
                "split": "pool",
                "slice_id": ROUND_ID,
                "status": "active",
                "n_chars": len(task.prompt),
                "added_at": now_utc(),
            }
        )
        answers = {
            "v0": f"Answer: {systematic_slip(task)}",
            "ref:strong": f"Here is the result.\nAnswer: {task.answer}",
            "ref:mixed": "I am not sure.",
        }
        for model_id, text in answers.items():
            responses.append(
                {
                    "response_id": f"r-{model_id}-{prompt_id}",
                    "prompt_id": prompt_id,
                    "model_id": model_id,
                    "sample_idx": 0,
                    "round_id": ROUND_ID,
                    "response_text": text,
                }
            )
        for ref, outcome, score_b in (("ref:strong", "loss", 9.0), ("ref:mixed", "win", 2.0)):
            battles.append(
                {
                    "battle_id": f"b-{prompt_id}-{ref}",
                    "round_id": ROUND_ID,
                    "prompt_id": prompt_id,
                    "purpose": "train",
                    "model_a": "v0",
                    "model_b": ref,
                    "response_a_id": f"r-v0-{prompt_id}",
                    "response_b_id": f"r-{ref}-{prompt_id}",
                    "judge": "judge",
                    "score_a": 3.0,
                    "score_b": score_b,
                    "score_gap": abs(score_b - 3.0),
                    "outcome": outcome,
                }
            )
    round_row = {"round_id": ROUND_ID, "stage": "sft", "status": "running"}
    with connect(config.warehouse.path) as con:
        insert_new(con, "rounds", [round_row], ["round_id"])
        insert_new(con, "prompts", prompts, ["prompt_id"])
        insert_new(con, "responses", responses, ["response_id"])
        insert_new(con, "battles", battles, ["battle_id"])
    return prompts


def sandbox_total(server: SandboxServer) -> int:
    base = server.base_url.removesuffix("/v1")
    return httpx.get(f"{base}/sandbox/stats", timeout=5).json()["total"]


def table_counts(config: Config) -> dict[str, int]:
    with connect(config.warehouse.path, read_only=True) as con:
        return {
            t: con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("llm_calls", "sft_examples")
        }


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return refine_config(tmp_path)


@pytest.fixture
def sandbox(config: Config) -> Iterator[SandboxServer]:
    with start_sandbox(config.sandbox) as server:
        yield server


def test_refine_targets_are_the_references_corrections_and_carry_their_call_ids(
    config: Config, sandbox: SandboxServer
) -> None:
    prompts = store_lost_battles(config)
    report = mine_round(live(config, sandbox), ROUND_ID, "sft")
    assert report.n_added["sft"] == report.n_total["sft"] == N_PROMPTS
    assert report.refine is not None and report.refine.n_without_target == 0
    with connect(config.warehouse.path) as con:
        rows = con.execute(
            "select s.prompt_id, s.source_model, s.target_source, c.response_text, c.round_id, "
            "c.endpoint, c.request_json from sft_examples as s "
            "join llm_calls as c on c.call_id = s.target_call_id order by s.prompt_id"
        ).fetchall()
        exported = export_rows(con, "v_sft_data", ("messages",), ROUND_ID)
    assert len(rows) == N_PROMPTS
    questions = {p["prompt_id"]: p["prompt_text"] for p in prompts}
    for _, source_model, target_source, text, call_round, endpoint, request in rows:
        assert (source_model, target_source, call_round, endpoint) == (
            "ref:strong",
            "refine",
            ROUND_ID,
            "strong",
        )
        assert "Draft Answer" in request and "Answer: " in request  # the correction prompt
        assert not text.startswith("Here is the result.")  # the champion's format
    right = [check_answer(questions[r[0]], r[3]) for r in rows]
    assert sum(right) >= N_PROMPTS - 3  # sandbox-strong corrects 95% of its drafts
    targets = sorted(r["messages"][-1]["content"] for r in exported)
    assert targets == sorted(r[3] for r in rows)  # training and export get the corrections
    trained = training_rows(config, ROUND_ID, "sft")
    assert sorted(r["messages"][-1]["content"] for r in trained) == targets


def test_refine_with_names_the_correcting_reference(tmp_path: Path) -> None:
    config = refine_config(tmp_path, refine_with="mixed")
    store_lost_battles(config)
    with start_sandbox(config.sandbox) as server:
        mine_round(live(config, server), ROUND_ID, "sft")
    with connect(config.warehouse.path) as con:
        rows = con.execute(
            "select distinct s.source_model, c.endpoint from sft_examples as s "
            "join llm_calls as c on c.call_id = s.target_call_id"
        ).fetchall()
    assert rows == [("ref:mixed", "mixed")]


def test_rerun_of_the_mine_step_sends_no_refine_call_and_adds_no_rows(
    config: Config, sandbox: SandboxServer
) -> None:
    store_lost_battles(config)
    mine_round(live(config, sandbox), ROUND_ID, "sft")
    n_requests, counts = sandbox_total(sandbox), table_counts(config)
    with connect(config.warehouse.path) as con:  # as if killed after the calls, before the rows
        con.execute("delete from sft_examples where prompt_id in ('p000', 'p001')")

    again = mine_round(live(config, sandbox), ROUND_ID, "sft")

    assert sandbox_total(sandbox) == n_requests
    assert table_counts(config) == counts
    assert again.refine is not None
    assert (again.refine.n_existing, again.refine.n_refined, again.refine.n_cached) == (
        N_PROMPTS - 2,
        2,
        2,
    )
    third = mine_round(live(config, sandbox), ROUND_ID, "sft")
    assert third.n_added["sft"] == 0 and sandbox_total(sandbox) == n_requests


def test_a_failing_refine_endpoint_is_counted_and_visible_and_a_rerun_mines_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = refine_config(tmp_path, {"rate_500": 1.0})
    store_lost_battles(failing)
    with start_sandbox(failing.sandbox) as server, caplog.at_level(logging.WARNING):
        report = mine_round(live(failing, server), ROUND_ID, "sft")
    assert report.refine is not None
    assert (report.refine.n_failed, report.refine.n_refined) == (N_PROMPTS, 0)
    assert report.n_total["sft"] == 0  # no made-up target
    assert f"{N_PROMPTS} without a target and not mined ({N_PROMPTS} failed" in caplog.text
    with connect(failing.warehouse.path) as con:
        recorded = con.execute("select n_sft_without_target from rounds").fetchone()[0]
        n_errors = con.execute("select count(*) from llm_calls where error is not null").fetchone()
    assert recorded == N_PROMPTS and n_errors[0] == N_PROMPTS
    with connect(failing.warehouse.path) as con:  # `flywheel run --retry-failed` sees the round
        con.execute("update rounds set status = 'done', promoted = false, decision_reason = 'kept'")
    assert rounds_with_failed_calls(failing) == {ROUND_ID: FailedCalls(0, 0, N_PROMPTS)}
    assert f"{N_PROMPTS} SFT battles have no example" in round_markdown(failing, ROUND_ID)

    healthy = refine_config(tmp_path)  # the endpoint is back: the next mining asks again
    with start_sandbox(healthy.sandbox) as server:
        again = mine_round(live(healthy, server), ROUND_ID, "sft")
    assert again.n_total["sft"] == N_PROMPTS
    with connect(healthy.warehouse.path) as con:
        assert con.execute("select n_sft_without_target from rounds").fetchone()[0] == 0
        assert con.execute("select count(*) from llm_calls").fetchone()[0] == N_PROMPTS
    assert rounds_with_failed_calls(healthy) == {}


def test_the_arena_rule_keeps_the_winners_answer(tmp_path: Path) -> None:
    config = refine_config(tmp_path, sft_rule="arena")
    store_lost_battles(config)
    report = mine_round(config, ROUND_ID, "sft")  # no sandbox needed: no model call
    assert report.refine is None and report.n_total["sft"] == N_PROMPTS
    with connect(config.warehouse.path) as con:
        sources = con.execute(
            "select distinct target_source, target_call_id from sft_examples"
        ).fetchall()
        targets = con.execute("select target_text from v_sft_data").fetchall()
    assert sources == [("winner", None)]
    assert all(t.startswith("Here is the result.") for (t,) in targets)
