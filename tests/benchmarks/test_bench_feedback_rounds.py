"""benchmarks/bench_feedback_rounds.py's config copies: only the feedback arms read the users'
logs, every day written so far and not the ground truth beside them; feedback-sft keeps the
preference stages on battle rows."""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import yaml

from flywheel.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_feedback_rounds import arm_config  # noqa: E402


def options(classify: bool) -> argparse.Namespace:
    return argparse.Namespace(cpu_threads=1, pool_size=4000, classify=classify)


def test_only_the_feedback_arms_read_every_days_logs_and_not_their_truth(tmp_path: Path) -> None:
    base = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())
    battles = load_config(arm_config(base, "battles", 1, tmp_path / "b", options(True)))
    feedback = load_config(arm_config(base, "feedback", 1, tmp_path / "f", options(True)))
    assert battles.logs.paths == [] and feedback.logs.classify
    days = [tmp_path / "f" / "logs" / f"day-{d}" for d in (2, 3)]
    logs = [day / f"day-00{d}.langsmith.jsonl" for d, day in zip((2, 3), days, strict=True)]
    for day, log in zip(days, logs, strict=True):
        (day / "ground-truth").mkdir(parents=True)
        (day / "ground-truth" / log.name).touch()
        log.touch()
    (pattern,) = feedback.logs.paths
    assert sorted(glob.glob(pattern)) == [str(log) for log in logs]
    assert feedback.prompts.sandbox_pool_size == 4000 and feedback.training.seed == 1
    sft_only = load_config(arm_config(base, "feedback-sft", 1, tmp_path / "s", options(False)))
    assert sft_only.logs.paths and not feedback.training.mix
    assert set(sft_only.training.mix) == {"rm+rl", "dpo"}
    assert Path(feedback.warehouse.path).parent == tmp_path / "f"
