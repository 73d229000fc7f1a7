"""configs/demo-stages.yaml (the six-round schedule built from the stage table) is the demo
with its schedule and the sections that schedule needs changed, nothing else: the two
schedules compare on the same arena, student, prompts and settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flywheel.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANGED = {  # what the schedule changes, and why it may
    ("schedule", "stages"),  # the schedule itself
    ("schedule", "rounds"),  # six rounds by default
    ("training", "rl", "algorithm"),  # RLOO, above GRPO in the table
    ("training", "kto"),  # the new stages' sections, on DPO's settings
    ("training", "orpo"),
    ("training", "online_dpo"),
    ("prompts", "sandbox_pool_size"),  # enough prompts for six slices
    ("warehouse", "path"),  # its own files, apart from the demo's
    ("training", "output_dir"),
}


def leaves(data: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every value of a YAML mapping by its key path (a section named in CHANGED whole is one
    leaf)."""
    if not isinstance(data, dict) or path in CHANGED:
        return {path: data}
    found: dict[tuple[str, ...], Any] = {}
    for key, value in data.items():
        found |= leaves(value, (*path, key))
    return found


def test_demo_stages_differs_from_the_demo_only_where_its_schedule_needs() -> None:
    demo = leaves(yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text()))
    stages = leaves(yaml.safe_load((REPO_ROOT / "configs" / "demo-stages.yaml").read_text()))
    differing = {path for path in demo.keys() | stages.keys() if demo.get(path) != stages.get(path)}
    assert differing <= CHANGED, sorted(differing - CHANGED)


def test_demo_stages_schedules_every_stage_kind_once_in_six_rounds() -> None:
    config = load_config(REPO_ROOT / "configs" / "demo-stages.yaml")
    assert config.schedule.rounds == 6
    assert sorted(config.schedule.stages) == sorted(
        ["sft", "dpo", "rm+rl", "kto", "orpo", "online-dpo"]
    )
    assert config.training.kto.learning_rate == config.training.dpo.learning_rate
    assert config.training.orpo.num_train_epochs == config.training.dpo.num_train_epochs
