"""A whole smoke round (all eight steps, under Prefect's test harness) on a DuckLake with a
SQLite catalog, next to the same round on a DuckDB file: both finish, every contract holds,
and every table has as many rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.config import load_config
from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.lake import close_lakes
from flywheel.warehouse.store import connect_warehouse
from tests.flows.test_round import smoke_student, write_smoke_config  # noqa: F401 - fixture
from tests.warehouse.test_lake import lake_settings


def round_tables(config_path: Path) -> tuple[dict[str, int], list[tuple], list[str]]:
    config = load_config(config_path)
    with connect_warehouse(config.warehouse, read_only=True) as con:
        counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in NATURAL_KEYS}
        statuses = con.execute("select round_id, status, error from rounds").fetchall()
        return counts, statuses, contract_violations(con)


@pytest.mark.slow
def test_a_round_on_the_lake_matches_the_round_on_the_file(
    smoke_student: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flywheel.flows.flywheel_flow import flywheel

    file_path = write_smoke_config(tmp_path / "file", smoke_student)
    lake_root = tmp_path / "lake"
    lake_path = write_smoke_config(lake_root, smoke_student)
    data = yaml.safe_load(lake_path.read_text())
    data["warehouse"] |= lake_settings(lake_root)
    lake_path.write_text(yaml.safe_dump(data))
    try:
        with prefect_test_harness(server_startup_timeout=120):
            flywheel(str(file_path), rounds=1)
            flywheel(str(lake_path), rounds=1)
        file_counts, file_statuses, _ = round_tables(file_path)
        lake_counts, lake_statuses, violations = round_tables(lake_path)
    finally:
        close_lakes()
    assert lake_statuses == file_statuses == [(1, "done", None)]
    assert violations == []
    assert lake_counts == file_counts and lake_counts["battles"] > 0
    assert not (lake_root / "flywheel.duckdb").exists()  # nothing went to a file
