"""rm+rl with `training.rl.algorithm: rloo`: TRL's RLOOTrainer a few steps on the tiny model
against the same reward (one model, or the ensemble's standardised mean): loss and reward
logged, weights changed, the algorithm recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flywheel.llm.stages.reward_model import RewardModelConfig
from flywheel.llm.stages.rm_rl import RLConfig, rl_trainer_classes, train_rm_rl
from flywheel.llm.stages.settings import StageTrainingConfig

RM_CFG = StageTrainingConfig(learning_rate=1e-3, max_steps=3, batch_size=4, max_length=64)
RLOO_CFG = RLConfig(
    algorithm="rloo", learning_rate=1e-3, max_steps=2, batch_size=4, num_generations=2, beta=0.05
)


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} plus {i + 1}?"}]


PAIR_ROWS = [
    {
        "prompt": _prompt(i),
        "chosen": [{"role": "assistant", "content": f"Answer: {2 * i + 1}"}],
        "rejected": [{"role": "assistant", "content": f"Answer: {i}"}],
    }
    for i in range(12)
]
PROMPTS = [_prompt(i) for i in range(8)]


def _changed(base: Path, out: Path) -> bool:
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    return any(not torch.equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("ensemble_size", [1, 2])
def test_rloo_trains_the_policy_against_the_reward_models(
    base_checkpoint: Path, tmp_path: Path, ensemble_size: int
) -> None:
    out = tmp_path / f"rloo-{ensemble_size}"
    rm_cfg = RewardModelConfig(**RM_CFG.model_dump(), ensemble_size=ensemble_size)
    result = train_rm_rl(
        base_checkpoint, PAIR_ROWS, PROMPTS, out, rm_cfg, RLOO_CFG, seed=0, max_completion_tokens=6
    )
    assert result.hyperparams["algorithm"] == "rloo" and result.metrics["n_steps"] == 2
    assert result.first_loss is not None and result.last_loss is not None
    assert result.metrics["rl_first_reward"] is not None
    assert result.metrics["rm_ensemble_size"] == ensemble_size
    assert _changed(base_checkpoint, out)


def test_the_algorithm_picks_trls_trainer() -> None:
    assert [cls.__name__ for cls in rl_trainer_classes("rloo")] == ["RLOOConfig", "RLOOTrainer"]
    assert [cls.__name__ for cls in rl_trainer_classes("grpo")] == ["GRPOConfig", "GRPOTrainer"]
    assert RLConfig().algorithm == "grpo"
