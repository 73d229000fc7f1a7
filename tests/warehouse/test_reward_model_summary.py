"""v_round_summary shows the rm+rl stage's ensemble: its size, held-out accuracy, early stop
(and why), the last judged win rate and the verifiable reward's weight."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.warehouse.literal_rows import write_literal_round


def test_round_summary_reads_the_ensembles_heldout_accuracy_from_its_training_run(
    tmp_path: Path,
) -> None:
    metrics = {
        "rm_ensemble_size": 3,
        "rm_ensemble_heldout_accuracy": 0.75,
        "rl_stopped_early": True,
        "rl_stop_reason": "judged win rate over the champion 0.3 fell",
        "rl_winrate_last": 0.3,
        "rl_verifiable_reward_weight": 0.5,
    }
    rl_round = {
        "round_id": 2,
        "stage": "rm+rl",
        "slice_id": 1,
        "status": "done",
        "champion_before": "r1-sft",
        "champion_after": "r1-sft",
        "candidate": "r2-rm-rl",
        "promoted": False,
        "wall_s": 20.0,
    }
    run = {
        "run_id": "t2",
        "round_id": 2,
        "stage": "rm+rl",
        "base_version": "r1-sft",
        "output_version": "r2-rm-rl",
        "status": "done",
        "hyperparams": json.dumps(metrics),
        "n_examples": 8,
    }
    with connect(tmp_path / "flywheel.duckdb") as con:
        write_literal_round(con)
        insert_new(con, "rounds", [rl_round], ["round_id"])
        insert_new(con, "training_runs", [run], ["run_id"])
        rows = con.execute(
            "select round_id, rm_ensemble_size, rm_heldout_accuracy, rl_stopped_early, "
            "rl_stop_reason, rl_winrate_last, rl_verifiable_weight "
            "from v_round_summary order by round_id"
        ).fetchall()
    assert rows == [
        (1, None, None, None, None, None, None),
        (2, 3, 0.75, True, "judged win rate over the champion 0.3 fell", 0.3, 0.5),
    ]
