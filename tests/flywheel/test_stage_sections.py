"""`training`'s stage sections come from the stage registry: each has only its stage's fields,
and a field under the wrong stage is refused naming the section that has it (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flywheel.config import ConfigError, TrainingConfig
from flywheel.flows.cli import main
from tests.conftest import REPO_ROOT, load_config_in

MISPLACED = [
    ("sft", "beta", 0.2, "training.sft.beta = 0.2: sft has no `beta`; it belongs to training.dpo and training.rl"),
    ("sft", "num_generations", 4, "training.sft.num_generations = 4: sft has no `num_generations`; it belongs to training.rl"),
    ("sft", "chosen_nll_weight", 1.0, "training.sft.chosen_nll_weight = 1.0: sft has no `chosen_nll_weight`; it belongs to training.dpo"),
    ("rm", "beta", 0.1, "training.rm.beta = 0.1: rm has no `beta`; it belongs to training.dpo and training.rl"),
    ("dpo", "ensemble_size", 2, "training.dpo.ensemble_size = 2: dpo has no `ensemble_size`; it belongs to training.rm"),
    ("rl", "chosen_nll_weight", 1.0, "training.rl.chosen_nll_weight = 1.0: rl has no `chosen_nll_weight`; it belongs to training.dpo"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "field", "value", "expected"), MISPLACED)
def test_a_misplaced_field_is_refused_naming_its_owner(
    tmp_path: Path, capsys: pytest.CaptureFixture, section: str, field: str, value: object,
    expected: str,
) -> None:  # fmt: skip
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"]["path"] = str(tmp_path / "flywheel.duckdb")
    data["training"][section][field] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["sql", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) <= 2 and lines[-1].strip().startswith(expected)
    assert "Fix: move it to training." in lines[-1]


def test_a_field_no_stage_has_is_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training.sft.betta: unknown key"):
        load_config_in(tmp_path, training={"sft": {"betta": 0.1}})


def test_the_shipped_configs_load_unchanged(tmp_path: Path) -> None:
    demo = load_config_in(tmp_path, "demo").training
    assert (demo.dpo.beta, demo.dpo.chosen_nll_weight) == (0.1, 1.0)
    assert (demo.rl.beta, demo.rl.num_generations, demo.rl.verifiable_reward_weight) == (
        0.05,
        4,
        0.5,
    )
    assert demo.sft.learning_rate == 0.00002 and demo.rm.learning_rate == 0.0005


def test_sections_left_out_keep_their_defaults_and_given_ones_the_shared_defaults() -> None:
    absent = TrainingConfig()
    assert (absent.sft.learning_rate, absent.dpo.learning_rate) == (5e-4, 5e-5)
    assert (absent.rm.learning_rate, absent.rl.learning_rate, absent.rl.beta) == (1e-4, 2e-5, 0.05)
    given = TrainingConfig(dpo={"beta": 0.2}, rl={"max_steps": 3})
    assert (given.dpo.learning_rate, given.rl.learning_rate, given.rl.beta) == (5e-4, 5e-4, 0.1)
