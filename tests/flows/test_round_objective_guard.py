"""A whole smoke round on the sandbox with the objective guard (on by default) and the general
limit against the first champion: both reach the decision's reason, the evaluation row and the
round-metrics-detail artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.warehouse.store import connect
from tests.flows.test_round import run_harness_round


@pytest.fixture(scope="module")
def guarded_round(smoke_student: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guarded")
    limit = {"general_max_nll_increase_from_first": 0.05}
    return run_harness_round(root, smoke_student, "evaluation", limit)


@pytest.mark.slow  # one smoke round under Prefect's test harness: 1-3 min on 2 busy cores
def test_the_round_stores_and_reports_the_objective_guard_and_the_first_champion(
    guarded_round: Path,
) -> None:
    with connect(guarded_round / "flywheel.duckdb", read_only=True) as con:
        cursor = con.execute("select * from evaluations")
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
        (reason,) = con.execute("select decision_reason from rounds where round_id = 1").fetchone()
    assert row["objective_source"] == "sandbox_checkers" and row["objective_n_items"] > 0
    assert row["objective_outcome"] in ("passed", "refused") and row["objective_max_drop"] == 0.05
    assert row["objective_accuracy_champion"] == row["sandbox_accuracy_champion"]
    assert row["general_first_champion"] == "v0" and row["general_first_nll"] > 0
    assert "objective set (the sandbox's checkers on " in reason
    assert "vs first champion v0 " in reason
    recorded = json.loads((guarded_round / "artifacts.json").read_text())
    detail = recorded["artifacts"]["round-metrics-detail"]
    detail_rows = json.loads(detail) if isinstance(detail, str) else detail
    assert detail_rows[0]["objective_outcome"] == row["objective_outcome"]
    assert detail_rows[0]["objective_accuracy_candidate"] == round(
        row["objective_accuracy_candidate"], 3
    )
    # round 1's champion is the first champion: both ratios are the same figure
    assert detail_rows[0]["general_nll_ratio_first"] == detail_rows[0]["general_nll_ratio"]
