"""Steps 2 and 3 (answer, judge) against the sandbox server on the smoke config: reruns,
lost rows rebuilt from the call cache, faults, secrets, the local champion, a killed step."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.tasks.answer import answer_as_student, answer_prompts
from flywheel.tasks.battle_plan import train_battle_pairs
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.responses import response_id_for
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import (
    CHAMPION_ID,
    OUTCOMES,
    ROUND_ID,
    assert_no_duplicates,
    fast_retries,
    insert_prompts,
    on_sandbox,
    run_round_steps,
    sandbox_stats,
    served_champion_config,
    table_counts,
)


def test_rerun_sends_zero_requests_and_adds_zero_rows(served_config, sandbox):
    prompt_ids = insert_prompts(served_config, 24)
    answers, pairs, judged = run_round_steps(
        on_sandbox(served_config, sandbox.base_url), prompt_ids
    )
    n_refs = len(served_config.references)
    assert answers.n_failed == 0 and len(pairs) == 24 * n_refs
    assert answers.by_model[CHAMPION_ID].n_generated == 24
    assert judged.n_planned_games == 2 * len(pairs) and judged.n_errors == 0
    assert sum(judged.outcomes.values()) == len(pairs)
    counts = table_counts(served_config)
    assert counts["responses"] == 24 * (1 + n_refs) and counts["battles"] == len(pairs)
    assert judged.n_verified > 0  # sandbox skills are checkable: the verifier judged too
    assert counts["judgments"] == 2 * len(pairs) + judged.n_verified
    stats_before = sandbox_stats(sandbox)
    assert stats_before["total"] == counts["llm_calls"]

    answers, pairs_again, judged = run_round_steps(
        on_sandbox(served_config, sandbox.base_url), prompt_ids
    )

    assert sandbox_stats(sandbox) == stats_before
    assert table_counts(served_config) == counts
    assert pairs_again == pairs
    assert all(c.n_existing == 24 and c.n_generated == 0 for c in answers.by_model.values())
    assert judged.n_planned_games == 0 and judged.n_battles_stored == len(pairs)
    assert sum(judged.outcomes.values()) == len(pairs)
    assert_no_duplicates(served_config)


def test_lost_judgment_and_battle_rows_are_rebuilt_from_the_call_cache(served_config, sandbox):
    prompt_ids = insert_prompts(served_config, 12)
    _, pairs, _ = run_round_steps(on_sandbox(served_config, sandbox.base_url), prompt_ids)
    counts = table_counts(served_config)
    with connect(served_config.warehouse.path) as con:  # as if killed before the last flush
        lost = [b for (b,) in con.execute("select battle_id from battles limit 5").fetchall()]
        con.execute("delete from battles where list_contains(?, battle_id)", [lost])
        con.execute(
            "delete from judgments where list_contains(?, battle_id) and game_order = 'BA' "
            "and judge <> 'verifier'",
            [lost],
        )
        con.execute("delete from responses where model_id = 'ref:mixed'")
    stats_before = sandbox_stats(sandbox)

    answers, _, judged = run_round_steps(on_sandbox(served_config, sandbox.base_url), prompt_ids)

    assert sandbox_stats(sandbox) == stats_before
    assert answers.by_model["ref:mixed"].n_cached == 12
    assert judged.n_battles_stored == len(pairs) - 5 and judged.n_battles_written == 5
    assert judged.n_planned_games == judged.n_cached == 5 and judged.n_to_send == 0
    assert table_counts(served_config) == counts
    assert_no_duplicates(served_config)


def test_steps_complete_under_injected_faults_without_duplicates(tmp_path):
    faults = {"rate_429": 0.2, "rate_500": 0.05, "rate_timeout": 0.02}
    config = served_champion_config(
        tmp_path,
        faults,
        sandbox={"timeout_delay_s": 1.0},
        judge={"timeout_s": 0.4, "max_retries": 1},  # few retries: some games end as errors
    )
    config = config.model_copy(
        update={
            "references": [r.model_copy(update={"timeout_s": 0.4}) for r in config.references],
        }
    )
    prompt_ids = insert_prompts(config, 40)
    with start_sandbox(config.sandbox) as server:
        answers, pairs, judged = run_round_steps(
            on_sandbox(fast_retries(config), server.base_url), prompt_ids
        )
        stats = sandbox_stats(server)
    assert sum(m["429"] for m in stats["models"].values()) > 0
    assert sum(m["timeout"] for m in stats["models"].values()) > 0
    n_answers_missing = sum(c.n_failed for c in answers.by_model.values())
    assert 2 * 40 - 2 * n_answers_missing <= len(pairs) <= 2 * 40 - n_answers_missing
    assert sum(judged.outcomes.values()) == len(pairs)
    assert judged.n_errors > 0  # with one retry, 27% faults leave some games failed
    with connect(config.warehouse.path, read_only=True) as con:
        battles = dict(con.execute("select battle_id, outcome from battles").fetchall())
        failed_games = con.execute(
            "select b.battle_id, j.error from battles as b join judgments as j using (battle_id) "
            "where b.outcome = 'error' and j.raw_text is null"
        ).fetchall()
        n_error_calls = con.execute(
            "select count(*) from llm_calls where error is not null"
        ).fetchone()[0]
    assert len(battles) == len(pairs) and set(battles.values()) <= OUTCOMES
    error_battles = {b for b, o in battles.items() if o == "error"}
    assert error_battles and {b for b, _ in failed_games} == error_battles
    assert all(("timeout" in e) or ("HTTP" in e) for _, e in failed_games)
    assert n_error_calls > 0  # each failed call is stored with its cause
    assert_no_duplicates(config)

    healthy = config.model_copy(
        update={"sandbox": served_champion_config(tmp_path / "healthy").sandbox}
    )
    with start_sandbox(healthy.sandbox) as server:  # a rerun retries only what failed
        _, pairs_again, judged_again = run_round_steps(
            on_sandbox(healthy, server.base_url), prompt_ids
        )
        n_sent = sandbox_stats(server)["total"]
    n_new_pairs = len(set(pairs_again) - set(pairs))
    assert n_new_pairs <= 2 * n_answers_missing
    assert judged_again.n_planned_games == judged.n_errors + 2 * n_new_pairs
    assert 0 < n_sent <= n_answers_missing + judged_again.n_planned_games
    assert judged_again.outcomes.get("error", 0) == 0
    assert sum(judged_again.outcomes.values()) == len(pairs_again)
    assert_no_duplicates(config)
    with connect(config.warehouse.path, read_only=True) as con:  # error rows were replaced
        assert (
            con.execute("select count(*) from llm_calls where error is not null").fetchone()[0] == 0
        )


def test_planted_api_key_never_reaches_warehouse_or_logs(tmp_path, monkeypatch, caplog):
    key = "sk-planted-flywheel-key-7f3a9c"
    monkeypatch.setenv("FLYWHEEL_TEST_API_KEY", key)
    with_key = {"api_key_env": "FLYWHEEL_TEST_API_KEY"}
    base = served_champion_config(tmp_path, {"rate_429": 0.1, "rate_500": 0.1})
    config = base.model_copy(
        update={
            "references": [r.model_copy(update=with_key) for r in base.references],
            "judge": base.judge.model_copy(update=with_key),
            "student": base.student.model_copy(
                update={"endpoint": base.student.endpoint.model_copy(update=with_key)}
            ),
        }
    )
    prompt_ids = insert_prompts(config, 12)
    caplog.set_level(logging.DEBUG)
    with start_sandbox(config.sandbox) as server:
        answers, _, judged = run_round_steps(
            on_sandbox(fast_retries(config), server.base_url), prompt_ids
        )
    assert answers.by_model[CHAMPION_ID].n_needed == 12 and judged.n_pairs > 0
    assert "judge plan" in caplog.text  # the logs were captured
    assert key not in caplog.text
    with connect(config.warehouse.path, read_only=True) as con:
        tables = [
            t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()
        ]
        dumped = "\n".join(str(con.execute(f"select * from {t}").fetchall()) for t in tables)
    assert "llm_calls" in tables and len(dumped) > 1000
    assert key not in dumped
    assert key.encode() not in Path(config.warehouse.path).read_bytes()


def test_local_champion_answers_once_with_left_padded_batches(tmp_path, tiny_student):
    config = load_config_in(tmp_path, "smoke", student={"max_new_tokens": 8, "batch_size": 4})
    prompt_ids = insert_prompts(config, 10)
    seen: list[tuple[int, int]] = []
    counts = answer_as_student(
        config,
        ROUND_ID,
        prompt_ids,
        CHAMPION_ID,
        str(tiny_student),
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert counts.n_generated == 10 and counts.n_failed == 0 and seen[-1] == (10, 10)
    with connect(config.warehouse.path, read_only=True) as con:
        rows = con.execute(
            "select response_id, prompt_id, model_id, call_id, n_tokens, finish_reason from responses"
        ).fetchall()
    assert len(rows) == 10
    assert all(
        r[0] == response_id_for(r[1], CHAMPION_ID) and r[2] == CHAMPION_ID and r[3] is None
        for r in rows
    )
    assert all(0 <= r[4] <= 8 and r[5] in {"stop", "length"} for r in rows)
    again = answer_as_student(config, ROUND_ID, prompt_ids, CHAMPION_ID, str(tiny_student))
    assert again.n_existing == 10 and again.n_generated == 0
    assert table_counts(config)["responses"] == 10


CHILD_SCRIPT = """
import sys
from flywheel.config import parse_config
from tests.tasks.answer_judge_fixtures import on_sandbox, run_round_steps
import json
config = parse_config(json.loads(sys.argv[1]))
run_round_steps(on_sandbox(config, sys.argv[2]), json.loads(sys.argv[3]))
"""


def sandbox_repeats(server: SandboxServer) -> dict:
    base = server.base_url.removesuffix("/v1")
    return httpx.get(f"{base}/sandbox/requests", timeout=5).json()


@pytest.mark.slow  # 40 s; a killed whole round resuming: tests/flows/test_round.py
def test_a_killed_step_resumes_without_duplicates_or_repeating_saved_calls(tmp_path):
    judge_concurrency = 4
    slow = {"latency_ms": 100}
    config = served_champion_config(tmp_path, slow, judge={"max_concurrency": judge_concurrency})
    faults = ("rate_429", "rate_500", "rate_timeout")
    assert all(getattr(m, f) == 0 for m in config.sandbox.models.values() for f in faults), (
        "fault injection would cause legitimate retries"
    )
    prompt_ids = insert_prompts(config, 30)
    with start_sandbox(config.sandbox) as server:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD_SCRIPT,
                config.model_dump_json(),
                server.base_url,
                json.dumps(prompt_ids),
            ],
            cwd=Path(__file__).resolve().parents[2],
        )
        deadline = time.monotonic() + 60
        while server.state.snapshot()["models"]["sandbox-judge"]["ok"] < 80:
            assert child.poll() is None and time.monotonic() < deadline, "child ended early"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)  # mid-judge: games in flight, others stored
        child.wait()
        n_judge_calls_before = server.state.snapshot()["models"]["sandbox-judge"]["ok"]
        assert sandbox_repeats(server)["repeated"] == []
        _, pairs, judged = run_round_steps(on_sandbox(config, server.base_url), prompt_ids)
        n_judge_calls_after = server.state.snapshot()["models"]["sandbox-judge"]["ok"]
        repeats = sandbox_repeats(server)
    assert_no_duplicates(config)
    assert sum(judged.outcomes.values()) == len(pairs) == 60
    assert table_counts(config)["battles"] == len(pairs)
    # sent again: only the games not committed at the kill (on the wire, or answered and in
    # the commit backlog, which has as many places as the concurrency)
    repeated = repeats["repeated"]
    assert len(repeated) <= 2 * judge_concurrency, repeated
    assert all(r["model"] == "sandbox-judge" and r["count"] == 2 for r in repeated), repeated
    n_games = 2 * len(pairs)  # each sent once, but for those repeats
    assert n_judge_calls_after == n_games + len(repeated)
    assert 0 < n_judge_calls_after - n_judge_calls_before <= n_games - 80 + len(repeated)


def test_local_champion_and_endpoint_references_answer_together(tmp_path, tiny_student):
    config = load_config_in(tmp_path, "smoke", student={"max_new_tokens": 8, "batch_size": 4})
    prompt_ids = insert_prompts(config, 8)
    seen: list[tuple[int, int]] = []
    with start_sandbox(config.sandbox) as server:
        config = on_sandbox(config, server.base_url)
        report = answer_prompts(
            config,
            ROUND_ID,
            prompt_ids,
            champion_id=CHAMPION_ID,
            champion_path=str(tiny_student),
            on_progress=lambda done, total: seen.append((done, total)),
        )
        pairs = train_battle_pairs(config, ROUND_ID, prompt_ids, CHAMPION_ID)
        judged = judge_battles(config, ROUND_ID, pairs, "train")
    assert set(report.by_model) == {CHAMPION_ID, "ref:strong", "ref:mixed"}
    assert all(c.n_generated == 8 and c.n_failed == 0 for c in report.by_model.values())
    assert seen[-1] == (24, 24)
    assert len(pairs) == 16 and sum(judged.outcomes.values()) == 16
