"""A whole smoke round with the refine SFT rule: its SFT examples are corrections (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from flywheel.config import load_config
from flywheel.flows.run_command import run_flywheel_cli
from flywheel.warehouse.store import connect
from tests.flows.test_round import write_smoke_config


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield


@pytest.mark.slow
def test_a_refine_round_trains_on_the_references_corrections(
    tmp_path: Path, smoke_student: Path, prefect_api: None
) -> None:
    path = write_smoke_config(tmp_path, smoke_student)
    data = yaml.safe_load(path.read_text())
    data["training"]["mining"] |= {"sft_rule": "refine", "refine_with": "strong"}
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)

    assert run_flywheel_cli(config, str(path), 1, False) == 0

    with connect(config.warehouse.path, read_only=True) as con:
        examples = con.execute(
            "select s.target_source, s.source_model, c.endpoint, c.round_id "
            "from sft_examples as s left join llm_calls as c on c.call_id = s.target_call_id"
        ).fetchall()
        status, n_without_target = con.execute(
            "select status, n_sft_without_target from rounds where round_id = 1"
        ).fetchone()
        n_trained = con.execute(
            "select n_examples from training_runs where round_id = 1 and stage = 'sft'"
        ).fetchone()[0]
    assert examples and set(examples) == {("refine", "ref:strong", "strong", 1)}
    assert (status, n_without_target) == ("done", 0)
    assert n_trained == len(examples)
