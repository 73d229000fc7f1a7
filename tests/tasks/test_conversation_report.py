"""The conversation A/B's counts reach the round's report: the conversation judge's and the
simulated user's calls, cost and errors in their step reports (as the single-turn judge's do),
in v_conversation_costs, and in the round's conversation artifacts (tasks/conversation_report.py)."""

from __future__ import annotations

import pytest

import flywheel.tasks.conversation_report as conversation_report
from flywheel.config import resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.answer import answer_as_student
from flywheel.tasks.conversation_report import (
    conversation_tables,
    cost_rows,
    kind_rows,
    publish_conversation_report,
    realism_rows,
)
from flywheel.tasks.judge_conversations import judge_conversations
from flywheel.tasks.simulate import round_personas, simulate_conversations
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.conversation_fixtures import (
    CANDIDATE,
    CHAMPION,
    SIMULATOR,
    insert_eval_prompts,
    planted_config,
)
from tests.warehouse.test_conversation_views import write_rows

PRICES = {"price_in_per_mtok": 1000.0, "price_out_per_mtok": 2000.0}


@pytest.fixture
def literal_config(tmp_path):
    config = load_config_in(tmp_path, "smoke")
    with connect(config.warehouse.path) as con:
        write_rows(con)
    return config


def test_the_artifact_rows_per_persona_kind_and_over_all(literal_config) -> None:
    rows = kind_rows(conversation_tables(literal_config, 1).kinds)
    assert rows == [
        {
            "persona kind": "correction",
            "conversations": "2",
            "user turns": "3.00",
            "pushed back": "1.000",
            "gave up": "0.500",
            "ended satisfied": "0.500",
            "judge vs truth": "1/1 (1.000)",
            "user vs truth": "2/2 (1.000)",
            "user vs real users": "2/2 (1.000)",
            "judge vs real users": "1/1 (1.000)",
        },
        {
            "persona kind": "plain",
            "conversations": "2",
            "user turns": "2.00",
            "pushed back": "0.000",
            "gave up": "0.000",
            "ended satisfied": "1.000",
            "judge vs truth": "0/1 (0.000)",
            "user vs truth": "1/2 (0.500)",
            "user vs real users": "1/1 (1.000)",
            "judge vs real users": "-",
        },
        {
            "persona kind": "all",
            "conversations": "4",
            "user turns": "2.50",
            "pushed back": "0.500",
            "gave up": "0.250",
            "ended satisfied": "0.750",
            "judge vs truth": "1/2 (0.500)",
            "user vs truth": "3/4 (0.750)",
            "user vs real users": "3/3 (1.000)",
            "judge vs real users": "1/1 (1.000)",
        },
    ]


def test_the_realism_and_cost_rows(literal_config) -> None:
    tables = conversation_tables(literal_config, 1)
    assert realism_rows(tables.realism)[1] == {
        "model": "v1",
        "logs of": "same model",
        "conversations": "2 | 2 (1 with feedback)",
        "user turns": "2.50 | 1.00",
        "pushed back": "0.500 | 0.000",
        "gave up": "0.500 | 1.000",
        "ended satisfied": "0.500 | 0.000",
    }
    assert [(r["part"], r["calls paid"], r["failed calls"], r["cost"]) for r in cost_rows(
        tables.costs
    )] == [
        ("conversation judge", "1", "0", "$0.1000"),
        ("model", "1", "0", "$0.0000"),
        ("simulated user", "3", "1", "$0.0200"),
    ]  # fmt: skip


def test_three_artifacts_for_a_round_with_conversations_none_without(
    literal_config, monkeypatch
) -> None:
    published: list[tuple[str, list[dict]]] = []
    monkeypatch.setattr(
        conversation_report,
        "create_table_artifact",
        lambda table, key, description: published.append((key, table)),
    )
    assert publish_conversation_report(literal_config, 1)
    assert [key for key, _ in published] == [
        "round-1-conversations",
        "round-1-conversation-realism",
        "round-1-conversation-costs",
    ]
    assert [len(table) for _, table in published] == [3, 2, 3]
    assert not publish_conversation_report(literal_config, 2)
    assert len(published) == 3


def test_the_judge_and_simulator_counts_reach_the_reports_and_the_costs_view(tmp_path) -> None:
    priced_simulator = SIMULATOR | PRICES
    config = planted_config(
        tmp_path, "conversations", n_conversations=4, simulator=priced_simulator
    )
    judge = config.judge.model_copy(update=PRICES)
    config = config.model_copy(update={"judge": judge})
    prompt_ids = insert_eval_prompts(config, 4)
    versions = ((CANDIDATE, None), (CHAMPION, None))
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        for version, _ in versions:
            answer_as_student(live, 1, prompt_ids, version, None)
        simulation = simulate_conversations(live, 1, round_personas(live), versions)
        judged = judge_conversations(live, 1, CANDIDATE, CHAMPION)
        again = judge_conversations(live, 1, CANDIDATE, CHAMPION)
    assert judged.n_calls_sent == judged.n_to_send > 0
    assert judged.cost_usd > 0 and judged.errors == {}
    assert 0 < judged.cost_usd <= judged.estimated_cost_usd
    assert again.n_calls_sent is None and again.cost_usd == 0  # decided: nothing sent again
    assert simulation.simulator.n_sent > 0 and simulation.simulator.cost_usd > 0
    assert simulation.model.n_sent > 0 and simulation.simulator.n_failed == 0
    costs = {r["part"]: r for _, r in conversation_tables(config, 1).costs.iterrows()}
    assert costs["conversation judge"]["n_calls_paid"] == judged.n_calls_sent
    assert costs["conversation judge"]["cost_usd"] == pytest.approx(judged.cost_usd)
    assert costs["simulated user"]["n_calls_paid"] == simulation.simulator.n_sent
    assert costs["simulated user"]["cost_usd"] == pytest.approx(simulation.simulator.cost_usd)
    assert costs["model"]["n_calls_paid"] == simulation.model.n_sent
