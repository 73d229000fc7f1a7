"""benchmarks/bench_replay.py's pure parts: the two arms' configs differ only by the replay cap,
the arms resume in slices up to the total, and the per-round figures (the champion's accuracy
after each decision, the start and end windows, the slope, the capped/uncapped ratios)."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import pytest
import yaml

from flywheel.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_replay.py"
sys.path.insert(0, str(SCRIPT.parent))
from bench_replay import (  # noqa: E402
    arm_config,
    arm_figures,
    comparison,
    rounds_done_by_both,
    slice_ends,
    slope_per_round,
    window_mean,
    with_champion_accuracy,
)


def bench_args(**overrides: object) -> argparse.Namespace:
    values = {
        "rounds": 30,
        "replay_rows": 60,
        "slice_size": 40,
        "eval_size": 100,
        "stages": "dpo,sft",
        "seed": 3,
        "threads": 1,
    }
    return argparse.Namespace(**(values | overrides))


def demo_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())


def test_the_arms_differ_only_by_the_replay_cap(tmp_path: Path) -> None:
    args = bench_args()
    uncapped = arm_config(demo_config(), "uncapped", tmp_path / "uncapped", args)
    capped = arm_config(demo_config(), "capped", tmp_path / "capped", args)

    assert capped["training"]["mining"]["replay_rows"] == {"dpo": 60, "sft": 60}
    assert "replay_rows" not in uncapped["training"]["mining"]
    assert uncapped["training"]["mining"]["accumulate"] is True
    del capped["training"]["mining"]["replay_rows"]
    as_text = yaml.safe_dump(capped).replace(str(tmp_path / "capped"), str(tmp_path / "uncapped"))
    assert yaml.safe_load(as_text) == uncapped


def test_an_arm_config_loads_with_its_seed_slice_and_own_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "capped"
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(arm_config(demo_config(), "capped", run_dir, bench_args()))
    )
    config = load_config(config_path)

    assert config.training.mining.replay_rows == {"dpo": 60, "sft": 60}
    assert config.schedule.stages == ["dpo", "sft"] and config.schedule.rounds == 30
    assert (config.prompts.seed, config.sandbox.seed, config.training.seed) == (3, 3, 3)
    assert (config.prompts.slice_size, config.prompts.eval_size) == (40, 100)
    assert config.prompts.sandbox_pool_size >= 100 + 30 * 40
    assert Path(config.warehouse.path).parent == run_dir
    assert Path(config.training.output_dir).parent == run_dir


@pytest.mark.parametrize(
    ("rounds", "slice_rounds", "ends"),
    [(30, 5, [5, 10, 15, 20, 25, 30]), (12, 5, [5, 10, 12]), (5, 5, [5]), (4, 10, [4])],
)
def test_each_arm_resumes_in_slices_up_to_the_total(
    rounds: int, slice_rounds: int, ends: list[int]
) -> None:
    assert slice_ends(rounds, slice_rounds) == ends


def round_row(
    round_id: int,
    wall: float,
    decision: str | None,
    candidate: float | None,
    champion: float | None,
    n_examples: int = 10,
) -> dict:
    return {
        "round_id": round_id,
        "status": "done",
        "round_wall_s": wall,
        "train_wall_s": wall / 2,
        "n_examples": n_examples,
        "n_earlier_available": n_examples - 5,
        "decision": decision,
        "sandbox_accuracy_candidate": candidate,
        "sandbox_accuracy_champion": champion,
    }


def test_the_champion_accuracy_follows_promotions_and_carries_over_skipped_rounds() -> None:
    rows = [
        round_row(1, 10, "promote", 0.6, 0.5),
        round_row(2, 10, "keep", 0.55, 0.6),
        round_row(3, 10, None, None, None),  # training skipped: no evaluation
        round_row(4, 10, "promote", 0.7, 0.6),
    ]
    accuracies = [r["champion_accuracy"] for r in with_champion_accuracy(rows)]
    assert accuracies == [0.6, 0.6, 0.6, 0.7]


def test_windows_and_slope_read_the_rounds_named() -> None:
    rows = [round_row(i, 10 + 2 * i, "keep", 0.5, 0.5) for i in range(1, 11)]
    rows[2]["round_wall_s"] = None  # a round without a wall time is left out

    assert window_mean(rows, "round_wall_s", 1, 3) == pytest.approx((12 + 14) / 2)
    assert window_mean(rows, "round_wall_s", 6, 10) == pytest.approx(26.0)
    assert window_mean(rows, "round_wall_s", 11, 15) is None
    assert slope_per_round(rows, "round_wall_s") == pytest.approx(2.0)
    assert slope_per_round(rows[:1], "round_wall_s") is None


def test_capped_figures_are_ratios_to_the_uncapped_peer() -> None:
    growing = [round_row(i, 10 + 4 * i, "keep", 0.5, 0.5, n_examples=20 * i) for i in range(1, 11)]
    flat = [round_row(i, 14.0, "keep", 0.5, 0.5, n_examples=20) for i in range(1, 11)]
    flat[-1] |= {"decision": "promote", "sandbox_accuracy_candidate": 0.48}
    uncapped, capped = arm_figures(growing, 10), arm_figures(flat, 10)

    assert uncapped["round_wall_s_first"] == pytest.approx(22.0)  # rounds 1-5
    assert uncapped["round_wall_s_last"] == pytest.approx(42.0)  # rounds 6-10
    compared = comparison(capped, uncapped)
    assert compared["round_wall_s_last_ratio"] == pytest.approx(14 / 42)
    assert compared["rows_trained_last_ratio"] == pytest.approx(20 / 200)
    assert compared["round_wall_slope_s_ratio"] == pytest.approx(0.0)
    # rounds 6-10: (7 / 20) per row capped, the mean of (5 + 2i) / (20 i) uncapped
    per_row = statistics.fmean((5 + 2 * i) / (20 * i) for i in range(6, 11))
    assert compared["train_s_per_row_last_ratio"] == pytest.approx((7 / 20) / per_row)
    assert compared["accuracy_final_points_capped_minus_uncapped"] == pytest.approx(-2.0)


def test_a_report_covers_only_the_rounds_every_arm_finished() -> None:
    ahead = [round_row(i, 10, "keep", 0.5, 0.5) for i in range(1, 8)]
    behind = [round_row(i, 10, "keep", 0.5, 0.5) for i in range(1, 6)]
    behind[-1]["status"] = "running"  # stopped inside round 5
    assert rounds_done_by_both({"uncapped": ahead, "capped": behind}) == 4
    assert rounds_done_by_both({"uncapped": ahead, "capped": []}) == 0
