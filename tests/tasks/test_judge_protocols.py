"""The judge step on whole conversations and with each protocol: the conversation reaches the
references and judge intact, a context budget cuts the oldest turns, each verdict protocol,
a JSON judge refusing response_format, decisive battles without a gap, a judge panel."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from flywheel.config import Config
from flywheel.evaluators.judge_requests import read_judge_request
from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.mine import mine_round
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.tasks.answer_judge_fixtures import (
    CHAMPION_ID,
    ROUND_ID,
    insert_prompts,
    on_sandbox,
    run_round_steps,
    sandbox_stats,
    served_champion_config,
)

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
