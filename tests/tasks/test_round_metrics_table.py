"""round-metrics is narrow and every view writes a figure with the same digits: the table, the
detail rows, the terminal table and the night's summary, from literal round rows."""

from __future__ import annotations

import pandas as pd

from flywheel.config import load_config
from flywheel.tasks.night_report import (
    NightCost,
    needs_a_look,
    night_headline,
    night_line,
    night_markdown,
)
from flywheel.tasks.report import round_metrics_rows, round_metrics_table, trend_markdown
from flywheel.tasks.terminal_table import terminal_table
from tests.conftest import REPO_ROOT

NAN = float("nan")
ROUND = {
    "round_id": 1,
    "stage": "sft",
    "status": "done",
    "error": None,
    "champion_before": "v0",
    "champion_after": "r1-sft",
    "promoted": True,
    "win_rate": 0.6341,
    "win_rate_ci_low": 0.61094,
    "win_rate_ci_high": 0.6571,
    "lc_win_rate": 0.61234,
    "wins": 71,
    "ties": 304,
    "losses": 18,
    "sandbox_accuracy": 0.64762,
    "general_nll": 2.5183,
    "general_nll_ratio": 1.01234,
    "general_collapse_share": 0.0,
    "n_battles": 1225,
    "n_decisive": 40,
    "n_decisive_without_gap": 0,
    "n_sft": 38,
    "n_dpo": 12,
    "n_rm": 0,
    "wall_s": 84.6,
}
SKIPPED = {
    **ROUND,
    "round_id": 2,
    "stage": "dpo",
    "promoted": False,
    "champion_after": "r1-sft",
    "champion_before": "r1-sft",
    "win_rate": NAN,
    "win_rate_ci_low": NAN,
    "win_rate_ci_high": NAN,
    "lc_win_rate": NAN,
    "wins": NAN,
    "ties": NAN,
    "losses": NAN,
    "sandbox_accuracy": NAN,
    "n_decisive_without_gap": 3,
}
FAILED = {
    **SKIPPED,
    "round_id": 3,
    "stage": "rm+rl",
    "status": "failed",
    "error": "boom",
    "promoted": None,
    "champion_after": NAN,  # not decided: the champion stays the one it started with
}
ROUNDS = pd.DataFrame([ROUND, SKIPPED, FAILED])


def test_round_metrics_is_seven_columns_with_the_interval_in_one_cell() -> None:
    rows = round_metrics_table(ROUNDS, ci=0.95)
    assert list(rows[0]) == [
        "round",
        "stage",
        "win rate [95% CI]",
        "W/T/L",
        "accuracy",
        "decision",
        "champion after",
    ]
    assert rows[0]["win rate [95% CI]"] == "0.634 [0.611, 0.657]"
    assert rows[0]["W/T/L"] == "71/304/18" and rows[0]["accuracy"] == "0.648"
    assert [r["decision"] for r in rows] == ["promoted", "kept (no A/B)", "failed"]
    assert rows[1]["win rate [95% CI]"] == "-" and rows[1]["champion after"] == "r1-sft"
    assert rows[2]["champion after"] == "r1-sft"


def test_round_metrics_has_no_accuracy_column_without_a_checker() -> None:
    rows = round_metrics_table(ROUNDS.assign(sandbox_accuracy=NAN), ci=0.9)
    assert "accuracy" not in rows[0] and "win rate [90% CI]" in rows[0]


def test_the_detail_rows_keep_numbers_with_the_digits_the_tables_show() -> None:
    rows = round_metrics_rows(ROUNDS)
    assert list(rows[0]) == list(ROUNDS.columns)
    first = rows[0]
    assert first["win_rate"] == 0.634 and first["win_rate_ci_low"] == 0.611
    assert first["sandbox_accuracy"] == 0.648 and first["general_nll"] == 2.52
    assert first["n_battles"] == 1225 and first["promoted"] is True and first["stage"] == "sft"
    assert rows[1]["win_rate"] is None and rows[1]["wins"] is None


def test_the_terminal_table_writes_the_figures_as_round_metrics_does() -> None:
    table = terminal_table(ROUNDS).splitlines()
    metrics = round_metrics_table(ROUNDS, ci=0.95)[0]
    assert table[0].split()[:2] == ["round", "stage"]
    for cell in (metrics["win rate [95% CI]"], metrics["W/T/L"], metrics["accuracy"]):
        assert cell in table[1]
    assert "1,225" in table[1] and "2.52" in table[1] and "85 s" in table[1]
    assert table[-1] == "round 3 failed: boom"


def test_the_trend_key_counts_promotions() -> None:
    assert "over 3 rounds (1 promoted)" in trend_markdown(ROUNDS)


def test_the_nights_line_names_promotions_trend_cost_and_what_needs_a_look() -> None:
    cost = NightCost(
        pd.DataFrame(
            [
                {
                    "round_id": 1,
                    "n_judge_calls": 1000,
                    "n_calls": 1500,
                    "n_failed_calls": 2,
                    "n_tokens": 100000,
                    "cost_usd": 0.0,
                    "wall_s": 200.4,
                },
                {
                    "round_id": 2,
                    "n_judge_calls": 225,
                    "n_calls": 500,
                    "n_failed_calls": 0,
                    "n_tokens": 23456,
                    "cost_usd": 0.0,
                    "wall_s": 100.0,
                },
            ]
        )
    )
    line = night_line(ROUNDS, cost)
    assert line.startswith("the night: rounds 1-3 run, 1 promoted: round 1 (r1-sft); ")
    assert "eval win rate by round 0.634 -> - -> -" in line
    assert "1,225 judge calls, 123,456 tokens, $0.0000, 300 s" in line
    markdown = night_markdown(load_config(REPO_ROOT / "configs" / "smoke.yaml"), ROUNDS, cost)
    assert markdown.startswith("# The night: rounds 1-3, 1 promoted\n")
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]
    assert ["1", "sft", "0.634 [0.611, 0.657]", "71/304/18", "0.648", "promoted", "r1-sft"] in rows
    assert ["1", "1,000", "1,500", "2", "100,000", "$0.0000", "200 s"] in rows
    look = needs_a_look(ROUNDS, cost)
    assert "round 2: no A/B (the dpo stage trained no candidate)" in look
    assert "round 3 failed: boom" in look
    assert any(item.startswith("2 calls failed") for item in look)


def test_a_round_reported_before_it_is_marked_done_shows_its_decision() -> None:
    reported = pd.DataFrame([{**ROUND, "status": "running"}, {**ROUND, "status": "running"}])
    reported["promoted"] = pd.Series([True, None], dtype=object)
    rows = round_metrics_table(reported, ci=0.95)
    assert [r["decision"] for r in rows] == ["promoted", "running"]


def test_the_nights_headline_counts_promotions_and_unfinished_rounds() -> None:
    assert night_headline(ROUNDS) == "rounds 1-3: 1 promoted, 1 unfinished, champion r1-sft"
    assert night_headline(ROUNDS.iloc[:1]) == "round 1: 1 promoted, champion r1-sft"
