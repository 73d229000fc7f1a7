"""Steps 2 and 3 (answer, judge) against the sandbox server on the smoke config."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.config import Config, RetryConfig, resolve_sandbox_endpoints
from flywheel.evaluators.judge_requests import read_judge_request
from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.sandbox.skills import generate_tasks
from flywheel.tasks.answer import answer_as_student, answer_prompts
from flywheel.tasks.battle_plan import train_battle_pairs
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.mine import mine_round
from flywheel.tasks.responses import response_id_for
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in

ROUND_ID = 1
CHAMPION_ID = "v0"
FAST_RETRY = RetryConfig(base_delay_s=0.02, max_delay_s=0.2, max_retry_after_s=5.0)
TABLES = ("llm_calls", "responses", "judgments", "battles")
KEYS = {
    "llm_calls": "call_id",
    "responses": "response_id",
    "judgments": "judgment_id",
    "battles": "battle_id",
}
OUTCOMES = {"win", "loss", "tie", "inconsistent", "unparsed", "error"}
STUDENT_MODEL = {"role": "reference", "accuracy": 0.4, "verbosity": "terse", "latency_ms": 5}


def served_champion_config(
    tmp_path: Path, fault_rates: dict | None = None, **updates: dict
) -> Config:
    """The smoke config with the champion served by the sandbox (model `sandbox-student`)."""
    base = load_config_in(tmp_path, "smoke")
    models = {name: m.model_dump() for name, m in base.sandbox.models.items()}
    models["sandbox-student"] = dict(STUDENT_MODEL)
    for model in models.values():
        model.update(fault_rates or {})
    student = {"endpoint": {"name": "student", "base_url": "sandbox", "model": "sandbox-student"}}
    return load_config_in(
        tmp_path,
        "smoke",
        student=student | updates.pop("student", {}),
        sandbox={"models": models} | updates.pop("sandbox", {}),
        **updates,
    )


def insert_prompts(config: Config, n_prompts: int, seed: int = 0) -> list[str]:
    """`n_prompts` sandbox skill prompts stored as pool prompts of slice 1; their ids."""
    rows = []
    for i, task in enumerate(generate_tasks(n_prompts, seed)):
        messages = [{"role": "user", "content": task.prompt}]
        rows.append(
            {
                "prompt_id": f"p{seed}-{i:04d}",
                "messages": json.dumps(messages),
                "prompt_text": task.prompt,
                "source": "test",
                "category": task.skill,
                "split": "pool",
                "slice_id": 1,
                "status": "active",
                "n_chars": len(task.prompt),
                "added_at": now_utc(),
            }
        )
    with connect(config.warehouse.path) as con:
        insert_new(con, "prompts", rows, ["prompt_id"])
    return [r["prompt_id"] for r in rows]


def on_sandbox(config: Config, live_url: str) -> Config:
    """`config` as a run resolves it once the sandbox at `live_url` runs."""
    return resolve_sandbox_endpoints(config, live_url)


def fast_retries(config: Config) -> Config:
    """`config` with every endpoint (references, judge and panel, student.endpoint) waiting
    FAST_RETRY's short backoff between retries."""

    def fast(endpoint):
        return endpoint.model_copy(update={"retry": FAST_RETRY})

    panel = [fast(member) for member in config.judge.panel]
    student = config.student
    if student.endpoint is not None:
        student = student.model_copy(update={"endpoint": fast(student.endpoint)})
    return config.model_copy(
        update={
            "references": [fast(ref) for ref in config.references],
            "judge": fast(config.judge).model_copy(update={"panel": panel}),
            "student": student,
        }
    )


def run_round_steps(config: Config, prompt_ids: list[str]):
    """Answer and judge with `config` resolved to a running sandbox."""
    answers = answer_prompts(
        config, ROUND_ID, prompt_ids, champion_id=CHAMPION_ID, champion_path=None
    )
    pairs = train_battle_pairs(config, ROUND_ID, prompt_ids, CHAMPION_ID)
    judged = judge_battles(config, ROUND_ID, pairs, "train")
    return answers, pairs, judged


def table_counts(config: Config) -> dict[str, int]:
    with connect(config.warehouse.path, read_only=True) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


def sandbox_stats(server: SandboxServer) -> dict:
    base = server.base_url.removesuffix("/v1")
    return httpx.get(f"{base}/sandbox/stats", timeout=5).json()


def assert_no_duplicates(config: Config) -> None:
    with connect(config.warehouse.path, read_only=True) as con:
        for table, key in KEYS.items():
            n_rows, n_keys = con.execute(
                f"select count(*), count(distinct {key}) from {table}"
            ).fetchone()
            assert n_rows == n_keys, f"duplicate {key} in {table}"
        n_rows, n_keys = con.execute(
            "select count(*), count(distinct (prompt_id, model_id, sample_idx)) from responses"
        ).fetchone()
        assert n_rows == n_keys


@pytest.fixture
def served_config(tmp_path: Path) -> Config:
    return served_champion_config(tmp_path)


@pytest.fixture
def sandbox(served_config: Config) -> Iterator[SandboxServer]:
    with start_sandbox(served_config.sandbox) as server:
        yield server


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


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flywheel.llm.checkpoints import save_checkpoint
    from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

    texts = [t.prompt for t in generate_tasks(200, seed=3)]
    tokenizer = build_tokenizer(texts, vocab_size=300)
    model = build_tiny_llama(
        tokenizer, seed=0, hidden_size=32, n_layers=1, n_heads=2, intermediate_size=64
    )
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("student") / "v0")


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
from tests.tasks.test_answer_judge import on_sandbox, run_round_steps
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


CODE_CONVERSATION = [
    {"role": "system", "content": "You review Python code. Keep indentation exact."},
    {
        "role": "user",
        "content": "Why does this fail?\n\ndef total(xs):\n    for x in xs:\n        s += x\n    return s",
    },
    {"role": "assistant", "content": "`s` is never set. Start with:\n\n    s = 0"},
    {"role": "user", "content": "Show the whole function,\n  indented as before."},
]


def insert_conversation(config: Config, messages: list[dict]) -> str:
    """One multi-turn pool prompt of slice 1; its id."""
    row = {
        "prompt_id": "p-conversation",
        "messages": json.dumps(messages),
        "prompt_text": " ".join(messages[-1]["content"].split()),
        "source": "test",
        "split": "pool",
        "slice_id": 1,
        "status": "active",
        "n_chars": sum(len(m["content"]) for m in messages),
        "added_at": now_utc(),
    }
    with connect(config.warehouse.path) as con:
        insert_new(con, "prompts", [row], ["prompt_id"])
    return row["prompt_id"]


def request_log(server: SandboxServer, model: str) -> list[dict]:
    base = server.base_url.removesuffix("/v1")
    return httpx.get(f"{base}/sandbox/requests/log", params={"model": model}, timeout=5).json()[
        "requests"
    ]


def test_the_whole_conversation_reaches_references_and_judge_intact(served_config, sandbox):
    prompt_id = insert_conversation(served_config, CODE_CONVERSATION)
    _, pairs, judged = run_round_steps(on_sandbox(served_config, sandbox.base_url), [prompt_id])
    assert judged.n_errors == 0 and judged.n_prompts_cut == 0 and len(pairs) == 2
    for ref in served_config.references:
        (sent,) = request_log(sandbox, ref.model)
        assert sent["messages"] == CODE_CONVERSATION
    judge_requests = request_log(sandbox, served_config.judge.model)
    assert len(judge_requests) >= 2  # both orders (equal answers of two references share calls)
    for sent in judge_requests:
        request = read_judge_request(sent["messages"])
        assert request is not None and request.conversation == CODE_CONVERSATION
        assert "        s += x" in sent["messages"][1]["content"]


def test_a_judge_context_budget_cuts_the_oldest_turns_and_counts_them(tmp_path):
    config = served_champion_config(tmp_path, judge={"max_context_chars": 3000})
    long_first_turn = {"role": "user", "content": "Read this log:\n" + "    line\n" * 400}
    conversation = [CODE_CONVERSATION[0], long_first_turn, *CODE_CONVERSATION[2:]]
    prompt_id = insert_conversation(config, conversation)  # ~4,500 characters to the judge
    with start_sandbox(config.sandbox) as server:
        _, pairs, judged = run_round_steps(on_sandbox(config, server.base_url), [prompt_id])
        judge_requests = request_log(server, config.judge.model)
    assert judged.n_prompts_cut == len(pairs) == 2
    for sent in judge_requests:
        request = read_judge_request(sent["messages"])
        assert request is not None and request.n_turns_dropped == 2
        assert request.conversation == [conversation[0], conversation[-1]]
        assert "2 earlier turns of this conversation were cut" in sent["messages"][1]["content"]
    with connect(config.warehouse.path, read_only=True) as con:
        cut = con.execute(
            "select count(*) from judgments where judge <> 'verifier' and context_turns_cut = 2"
        ).fetchone()[0]
    assert cut == 2 * len(pairs)


@pytest.mark.parametrize("version", ["v1", "arena-hard-v1", "mt-bench-pair-v1", "json-v1"])
def test_a_round_runs_with_each_verdict_protocol_and_mines(tmp_path, version):
    config = served_champion_config(tmp_path, judge={"prompt_version": version})
    prompt_ids = insert_prompts(config, 12)
    with start_sandbox(config.sandbox) as server:
        _, pairs, judged = run_round_steps(on_sandbox(config, server.base_url), prompt_ids)
        sent = request_log(server, config.judge.model)
    assert judged.n_errors == 0 and judged.n_format_refused == 0
    assert judged.n_unparsed <= 2  # the sandbox judge's malformed_rate is 1%
    assert judged.n_decisive > 0 and judged.n_decisive_without_gap == 0
    assert {read_judge_request(r["messages"]).version for r in sent} == {version}
    wants_json = version == "json-v1"
    assert all((r["response_format"] is not None) == wants_json for r in sent)
    with connect(config.warehouse.path, read_only=True) as con:
        gaps, strengths = con.execute(
            "select count(score_gap), count(label_strength) from battles "
            "where outcome in ('win', 'loss')"
        ).fetchone()
    if version in ("v1", "json-v1"):
        assert gaps == judged.n_decisive  # scores: every decisive battle has a gap
    else:
        assert gaps == 0 and strengths == judged.n_decisive  # labels: a strength instead
    mined = mine_round(config, ROUND_ID, "dpo")
    assert mined.n_total["dpo"] > 0
    # calibration: the sandbox judge mostly sides with the checker when one answer is right
    assert judged.n_checker_decisive > 0
    assert judged.n_checker_agree >= 0.7 * judged.n_checker_decisive


def test_a_json_judge_that_refuses_response_format_is_asked_again_as_text(tmp_path):
    config = served_champion_config(tmp_path, judge={"prompt_version": "json-v1"})
    models = {name: m.model_dump() for name, m in config.sandbox.models.items()}
    models["sandbox-judge"]["accepts_response_format"] = False
    config = served_champion_config(
        tmp_path, judge={"prompt_version": "json-v1"}, sandbox={"models": models}
    )
    prompt_ids = insert_prompts(config, 6)
    with start_sandbox(config.sandbox) as server:
        _, pairs, judged = run_round_steps(on_sandbox(config, server.base_url), prompt_ids)
        refused = sandbox_stats(server)["models"]["sandbox-judge"]["400"]
        sent = request_log(server, config.judge.model)
    assert judged.n_format_refused == 2 * len(pairs) == refused
    assert judged.n_errors == 0 and "BadRequestError" not in judged.errors
    assert sent and all(r["response_format"] is None for r in sent)
    assert judged.n_decisive_without_gap == 0 and judged.n_judged == 2 * len(pairs)


def test_decisive_battles_without_a_gap_are_counted_and_warned_about(tmp_path, caplog):
    config = served_champion_config(tmp_path, judge={"max_share_without_gap": 0.4})
    prompt_ids = insert_prompts(config, 3)
    battles = [
        {
            "battle_id": f"b{i}",
            "round_id": ROUND_ID,
            "prompt_id": pid,
            "purpose": "train",
            "model_a": CHAMPION_ID,
            "model_b": "ref:strong",
            "response_a_id": f"ra{i}",
            "response_b_id": f"rb{i}",
            "judge": "judge",
            "score_gap": gap,
            "outcome": "loss",
        }
        for i, (pid, gap) in enumerate(zip(prompt_ids, [None, None, 4.0], strict=True))
    ]
    with connect(config.warehouse.path) as con:
        insert_new(con, "battles", battles, ["battle_id"])
        insert_new(con, "rounds", [{"round_id": ROUND_ID, "stage": "sft", "status": "running"}])
    with caplog.at_level(logging.WARNING):
        judged = judge_battles(config, ROUND_ID, [], "train")
    assert (judged.n_decisive, judged.n_decisive_without_gap) == (3, 2)
    assert "2 of 3 decisive battles (67%) have no score gap" in caplog.text
    with connect(config.warehouse.path, read_only=True) as con:
        summary = con.execute(
            "select n_decisive, n_decisive_without_gap from v_round_summary"
        ).fetchall()
    assert summary == [(3, 2)]


def test_a_judge_panel_judges_every_game_and_its_agreement_is_audited(tmp_path):
    base = served_champion_config(tmp_path)
    models = {name: m.model_dump() for name, m in base.sandbox.models.items()}
    models["sandbox-judge-2"] = models["sandbox-judge"] | {"score_noise": 2.0}
    panel = [{"name": "judge-2", "base_url": "sandbox", "model": "sandbox-judge-2"}]
    config = served_champion_config(
        tmp_path, judge={"panel": panel, "panel_aggregate": "mean"}, sandbox={"models": models}
    )
    prompt_ids = insert_prompts(config, 8)
    with start_sandbox(config.sandbox) as server:
        _, pairs, judged = run_round_steps(on_sandbox(config, server.base_url), prompt_ids)
        again = run_round_steps(on_sandbox(config, server.base_url), prompt_ids)[2]
    assert judged.n_errors == 0 and judged.n_planned_games == 4 * len(pairs)
    assert again.n_planned_games == 0 and again.n_battles_stored == len(pairs)
    with connect(config.warehouse.path, read_only=True) as con:
        per_judge = dict(
            con.execute("select judge, count(*) from judgments group by judge").fetchall()
        )
        n_games, agreement = con.execute(
            "select n_panel_games, panel_agreement from v_judge_calibration where purpose = 'train'"
        ).fetchone()
    assert per_judge["judge"] == per_judge["judge-2"] == 2 * len(pairs)
    assert n_games >= 2 * len(pairs) - judged.n_unparsed and 0.0 <= agreement <= 1.0
