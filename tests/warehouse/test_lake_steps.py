"""Two processes answer and judge different prompt sets of the same round on one DuckLake,
at once: the warehouse equals the one-process result on a DuckDB file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from flywheel.config import Config, load_config
from flywheel.sandbox.server import start_sandbox
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.lake import close_lakes
from flywheel.warehouse.store import connect_warehouse
from tests.tasks.answer_judge_fixtures import (
    insert_prompts,
    on_sandbox,
    run_round_steps,
    served_champion_config,
)
from tests.warehouse.test_lake import finish, lake_settings, start

STEP_TABLES = {  # table -> (natural key, columns that say when or how fast, not what)
    "llm_calls": ("call_id", ["created_at", "latency_ms"]),
    "responses": ("response_id", ["created_at"]),
    "judgments": ("judgment_id", ["created_at"]),
    "battles": ("battle_id", ["created_at"]),
}
N_PROMPTS = 30


def with_warehouse(config: Config, folder: Path, warehouse: dict) -> Path:
    """`config` with this warehouse section, written as a YAML file for the worker processes."""
    data = config.model_dump(mode="json")
    data["warehouse"] = data["warehouse"] | {"lock_timeout_s": 120} | warehouse
    path = folder / f"{warehouse.get('backend', 'duckdb')}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def step_rows(config: Config) -> dict[str, pd.DataFrame]:
    with connect_warehouse(config.warehouse, read_only=True) as con:
        return {
            table: con.execute(f"select * from {table} order by {key}").df().drop(columns=volatile)
            for table, (key, volatile) in STEP_TABLES.items()
        }


@pytest.mark.slow
def test_two_processes_answering_and_judging_one_round_equal_one_process(tmp_path: Path) -> None:
    served = served_champion_config(tmp_path)
    file = load_config(with_warehouse(served, tmp_path, {"path": str(tmp_path / "one.duckdb")}))
    lake_path = with_warehouse(served, tmp_path, lake_settings(tmp_path))
    lake = load_config(lake_path)
    try:
        with start_sandbox(served.sandbox) as sandbox:
            prompt_ids = insert_prompts(file, N_PROMPTS)
            assert insert_prompts(lake, N_PROMPTS) == prompt_ids
            run_round_steps(on_sandbox(file, sandbox.base_url), prompt_ids)
            halves = (prompt_ids[::2], prompt_ids[1::2])
            workers = [
                start(lake_path, "steps", sandbox.base_url, ",".join(half)) for half in halves
            ]
            outputs = [finish(worker, timeout_s=600) for worker in workers]
        n_refs = len(served.references)
        assert [o.split()[-1] for o in outputs] == [str(N_PROMPTS // 2 * n_refs)] * 2
        one, two = step_rows(file), step_rows(lake)
        for table in STEP_TABLES:
            assert len(one[table]) > 0
            pd.testing.assert_frame_equal(two[table], one[table], check_dtype=False)
        with connect_warehouse(lake.warehouse, read_only=True) as con:
            assert contract_violations(con) == []
    finally:
        close_lakes()
