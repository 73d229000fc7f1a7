"""The ORPO stage: a few steps on the tiny model with no reference model (loss logged, weights
changed, the odds-ratio term recorded), and beta 0 refused by the config naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from flywheel.config import ConfigError, parse_config
from flywheel.llm.stages.orpo import OrpoConfig, orpo_args, train_orpo
from flywheel.llm.stages.registry import stage_named
from tests.conftest import REPO_ROOT

CFG = OrpoConfig(learning_rate=1e-3, max_steps=3, batch_size=4, max_length=64)
PAIR_ROWS = [
    {
        "prompt": [{"role": "user", "content": f"What is {i} plus {i + 1}?"}],
        "chosen": [{"role": "assistant", "content": f"Answer: {2 * i + 1}"}],
        "rejected": [{"role": "assistant", "content": f"Answer: {i}"}],
    }
    for i in range(12)
]


def test_orpo_trains_on_the_dpo_pairs_without_a_reference(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "orpo"
    result = train_orpo(base_checkpoint, PAIR_ROWS, out, CFG, seed=0)
    assert result.n_examples == 12 and result.metrics["n_steps"] == 3
    # step 1: the chosen answers' NLL (~ln V for an untrained model) plus beta x the odds term
    assert result.first_loss is not None and result.first_loss > 1.0
    assert result.metrics["last_log_odds_ratio"] is not None
    assert result.hyperparams["reference"] == "none" and result.hyperparams["beta"] == CFG.beta
    before = load_file(str(base_checkpoint / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_orpo_mines_nothing_of_its_own_and_loads_without_a_device_map() -> None:
    assert stage_named("orpo").data is stage_named("dpo").data
    settings = {"model_init_kwargs": {"dtype": torch.float32}, "seed": 0}
    args = orpo_args(settings, CFG)
    assert args["model_init_kwargs"] == {"dtype": torch.float32, "device_map": None}
    assert args["remove_unused_columns"] is False and args["beta"] == CFG.beta


def test_orpo_without_its_odds_ratio_term_is_refused_naming_the_fix() -> None:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["training"]["orpo"] = {"beta": 0}
    with pytest.raises(ConfigError) as refused:
        parse_config(data, "smoke.yaml")
    message = str(refused.value)
    assert "training.orpo.beta = 0" in message
    assert "set training.orpo.beta above 0" in message and "sft stage" in message
