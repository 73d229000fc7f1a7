"""benchmarks/bench_feedback_guard.py's pure parts: the bench's config copy, what the liked rows
were by the traffic's truth, and the per-seed verdict on whether the guard separates the
planted flatterers' candidate from a clean population's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_feedback_guard import bench_config, liked_wrong, separation, stage_mix  # noqa: E402


def _run(seed: int, share: float, outcome: str | None) -> dict:
    gate = None if outcome is None else {"objective_outcome": outcome}
    return {"seed": seed, "flatterer_share": share, "gate": gate}


def test_the_guard_separates_only_where_every_planted_candidate_is_refused_and_no_clean_one() -> (
    None
):
    runs = [
        _run(0, 1.0, "refused"),
        _run(0, 0.0, "passed"),
        _run(1, 1.0, "refused"),
        _run(1, 0.0, "refused"),
        _run(2, 1.0, "passed"),
        _run(2, 0.0, "passed"),
        _run(3, 0.5, "refused"),
        _run(3, 1.0, None),  # nothing trained: no gate
        _run(3, 0.0, "passed"),
        _run(4, 1.0, "refused"),
    ]
    assert separation(runs) == {0: True, 1: False, 2: False, 3: False, 4: None}


def test_liked_wrong_counts_the_stage_rows_of_liked_answers_by_their_truth() -> None:
    truth = {"sft": {"feedback right": 2, "feedback wrong": 6, "feedback unknown": 3}}
    assert liked_wrong(truth, "sft") == {
        "liked_right": 2,
        "liked_wrong": 6,
        "liked_unknown": 3,
        "liked_wrong_share": 0.75,
    }
    assert liked_wrong({}, "dpo")["liked_wrong_share"] is None


def test_the_config_copy_trains_its_stage_on_feedback_rows_only_in_the_run_folder(
    tmp_path: Path,
) -> None:
    args = argparse.Namespace(
        eval_size=None, max_drop=None, threads=1, verbosity=None, battle_share=0.0
    )
    path = bench_config(REPO_ROOT / "configs" / "demo.yaml", tmp_path, 2, "sft", args)
    config = yaml.safe_load(path.read_text())
    assert config["training"]["mix"] == {"sft": {"feedback": 1.0}}
    assert config["schedule"] == {**config["schedule"], "stages": ["sft"], "rounds": 1}
    assert config["warehouse"]["path"] == str(tmp_path / "flywheel.duckdb")
    assert config["student"]["path"] == str(tmp_path / "student")
    assert (config["sandbox"]["seed"], config["training"]["seed"]) == (2, 2)
    assert config["training"]["sft"]["learning_rate"] == 0.00002  # demo.yaml's own


def test_verbosity_sets_every_reference_and_no_other_sandbox_model(tmp_path: Path) -> None:
    args = argparse.Namespace(
        eval_size=200, max_drop=None, threads=1, verbosity="terse", battle_share=0.0
    )
    path = bench_config(REPO_ROOT / "configs" / "smoke.yaml", tmp_path, 0, "sft", args)
    models = yaml.safe_load(path.read_text())["sandbox"]["models"]
    assert {name: m.get("verbosity") for name, m in models.items()} == {
        "sandbox-strong": "terse",
        "sandbox-mixed": "terse",
        "sandbox-judge": None,
    }


def test_a_battle_share_puts_battle_rows_beside_the_feedback_rows() -> None:
    assert stage_mix(0.0) == {"feedback": 1.0}
    assert stage_mix(0.5) == {"battle": 0.5, "feedback": 0.5}
    with pytest.raises(SystemExit, match="--battle-share 1.0"):
        stage_mix(1.0)
