"""The general_checks table (migration 010): its contract on literal rows, idempotent writes."""

from __future__ import annotations

from pathlib import Path

from flywheel.warehouse.catalog import documented_grains
from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.warehouse.literal_rows import LITERAL_ROWS, write_literal_round

ROWS = LITERAL_ROWS["general_checks"]


def test_one_row_per_version_checked_in_a_round(tmp_path: Path) -> None:
    with connect(tmp_path / "w.duckdb") as con:
        write_literal_round(con)
        remeasured = dict(ROWS[1], mean_nll=9.0)  # a resumed round measuring r1-sft again
        assert insert_new(con, "general_checks", [remeasured], NATURAL_KEYS["general_checks"]) == 0
        stored = con.execute(
            "select round_id, version_id, mean_nll, collapse_share from general_checks "
            "order by version_id"
        ).fetchall()
        assert contract_violations(con) == []
    assert stored == [(1, "r1-sft", 2.01, 0.03), (1, "v0", 1.92, 0.0)]
    assert documented_grains()["general_checks"].startswith("one row per model version checked")


def test_a_check_of_an_unknown_version_or_round_breaks_the_contract(tmp_path: Path) -> None:
    with connect(tmp_path / "w.duckdb") as con:
        write_literal_round(con)
        stray = dict(ROWS[0], round_id=7, version_id="r7-dpo")
        insert_new(con, "general_checks", [stray], NATURAL_KEYS["general_checks"])
        violations = contract_violations(con)
    assert "general_checks.round_id: 1 rows reference no rounds.round_id" in violations
    assert "general_checks.version_id: 1 rows reference no model_versions.version_id" in violations


def test_not_measured_figures_are_null_never_zero(tmp_path: Path) -> None:
    row = dict(ROWS[0], round_id=1, version_id="r1-sft", mean_nll=None, collapse_share=None)
    with connect(tmp_path / "w.duckdb") as con:
        insert_new(con, "general_checks", [row], NATURAL_KEYS["general_checks"])
        stored = con.execute("select mean_nll, collapse_share from general_checks").fetchone()
    assert stored == (None, None)


def test_each_round_shows_its_candidates_nll_against_the_champions(tmp_path: Path) -> None:
    from flywheel.warehouse.store import read_query

    with connect(tmp_path / "w.duckdb") as con:
        write_literal_round(con)
        rows = con.execute(read_query("round_general_checks")).fetchall()
    assert rows == [(1, 2.01, 2.01 / 1.92, 0.03)]
