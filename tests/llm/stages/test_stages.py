"""Each stage of llm/stages/ runs a few steps on a tiny model: loss logged, weights changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from flywheel.llm.checkpoints import generate_answers
from flywheel.llm.reward_ensemble import EnsembleReward
from flywheel.llm.stages.dpo import DpoConfig, train_dpo
from flywheel.llm.stages.reward_model import RewardModelConfig
from flywheel.llm.stages.rm_rl import RLConfig, reward_model_path, train_rm_rl
from flywheel.llm.stages.settings import StageTrainingConfig
from flywheel.llm.stages.sft import train_sft
from flywheel.llm.stages.spec import TrainResult

CFG = StageTrainingConfig(learning_rate=1e-3, max_steps=3, batch_size=4, max_length=64)
DPO_CFG = DpoConfig(**CFG.model_dump())
RL_CFG = RLConfig(learning_rate=1e-3, max_steps=2, batch_size=4, num_generations=2, beta=0.05)


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} plus {i + 1}?"}]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


SFT_ROWS = [{"messages": _prompt(i) + _answer(f"Answer: {2 * i + 1}")} for i in range(12)]
PAIR_ROWS = [
    {
        "prompt": _prompt(i),
        "chosen": _answer(f"Answer: {2 * i + 1}"),
        "rejected": _answer(f"Answer: {i}"),
    }
    for i in range(12)
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _assert_trained(result: TrainResult, base: Path, out: Path, n_examples: int) -> None:
    assert result.output_path == out
    assert result.n_examples == n_examples
    assert result.first_loss is not None and result.last_loss is not None
    assert result.wall_s > 0 and result.hyperparams["seed"] == 0
    before, after = _weights(base), _weights(out)
    assert any(not torch.equal(before[name], after[name]) for name in before)
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template is not None and model.config.vocab_size == len(tokenizer)
    answers = generate_answers(out, [_prompt(3)], max_new_tokens=4, device="cpu")
    assert len(answers) == 1 and answers[0].n_tokens <= 4


def test_sft_trains_and_writes_a_loadable_checkpoint(base_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    result = train_sft(base_checkpoint, SFT_ROWS, out, CFG, seed=0)
    _assert_trained(result, base_checkpoint, out, len(SFT_ROWS))
    assert result.hyperparams["assistant_only_loss"] is True
    assert result.metrics["n_steps"] == 3


def test_dpo_trains_against_the_base_as_reference(base_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo"
    result = train_dpo(base_checkpoint, PAIR_ROWS, out, DPO_CFG, seed=0)
    _assert_trained(result, base_checkpoint, out, len(PAIR_ROWS))
    assert result.first_loss == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    assert result.hyperparams["beta"] == DPO_CFG.beta


def test_dpo_with_chosen_nll_adds_the_chosen_answers_nll_to_the_loss(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    cfg = DPO_CFG.model_copy(update={"chosen_nll_weight": 1.0})
    result = train_dpo(base_checkpoint, PAIR_ROWS, tmp_path / "rpo", cfg, seed=0)
    # step 1: the DPO term is still ln 2; the untrained model's NLL of the chosen tokens adds ~ln V
    assert result.first_loss > 0.6931 + 1.0


def test_rm_then_rl_trains_a_reward_model_and_the_policy(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rl"
    prompts = [_prompt(i) for i in range(8)]
    result = train_rm_rl(
        base_checkpoint, PAIR_ROWS, prompts, out, CFG, RL_CFG, seed=0, max_completion_tokens=6
    )
    _assert_trained(result, base_checkpoint, out, len(prompts))
    rm_path = reward_model_path(out)
    assert result.metrics["reward_model_path"] == str(rm_path)
    assert (
        result.metrics["rm_first_loss"] is not None and result.metrics["rm_last_loss"] is not None
    )
    assert result.metrics["rl_first_reward"] is not None
    reward_model = AutoModelForSequenceClassification.from_pretrained(rm_path)
    assert reward_model.config.num_labels == 1


def test_a_failing_stage_leaves_nothing_at_out_path(
    base_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "broken"
    with pytest.raises(KeyError):  # no chosen/rejected
        train_dpo(base_checkpoint, [{"prompt": _prompt(0)}], out, DPO_CFG, seed=0)
    with pytest.raises(ValueError, match="no training examples"):
        train_sft(base_checkpoint, [], out, CFG, seed=0)
    with pytest.raises(RuntimeError, match="no optimizer step"):  # one prompt: no full GRPO batch
        train_rm_rl(base_checkpoint, PAIR_ROWS, [_prompt(0)], out, CFG, RL_CFG, seed=0)

    import trl

    def crash(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("killed mid-training (simulated)")

    monkeypatch.setattr(trl.SFTTrainer, "train", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        train_sft(base_checkpoint, SFT_ROWS, out, CFG, seed=0)
    assert not out.exists()
    assert not reward_model_path(out).exists()  # the reward model of a failed RL run is removed
    assert list(tmp_path.iterdir()) == []


ENSEMBLE_RM_CFG = RewardModelConfig(**CFG.model_dump(), ensemble_size=2, heldout_fraction=0.25)


def test_an_ensemble_trains_each_model_on_its_own_resample_and_records_heldout_accuracy(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rl-ensemble"
    rl_cfg = RLConfig(**{**RL_CFG.model_dump(), "disagreement_penalty": 0.5})
    prompts = [_prompt(i) for i in range(8)]
    result = train_rm_rl(
        base_checkpoint,
        PAIR_ROWS,
        prompts,
        out,
        ENSEMBLE_RM_CFG,
        rl_cfg,
        seed=0,
        max_completion_tokens=6,
    )
    metrics = result.metrics
    members = [reward_model_path(out) / f"member-{i}" for i in range(2)]
    first, second = (_weights(path) for path in members)
    assert any(not torch.equal(first[name], second[name]) for name in first)
    assert metrics["rm_ensemble_size"] == 2
    assert metrics["rm_n_train_pairs"] == 9 and metrics["rm_n_heldout_pairs"] == 3
    assert len(metrics["rm_member_heldout_accuracy"]) == 2
    assert all(0 <= a <= 1 for a in metrics["rm_member_heldout_accuracy"])
    assert 0 <= metrics["rm_ensemble_heldout_accuracy"] <= 1
    assert all(n < 9 for n in metrics["rm_member_n_unique_pairs"])  # resampled with replacement
    assert metrics["rl_disagreement_first"] > 0  # two models trained apart disagree somewhat
    assert metrics["rl_stopped_early"] is False and metrics["n_steps"] == 2
    assert result.hyperparams["rm"]["ensemble_size"] == 2
    assert result.hyperparams["disagreement_penalty"] == 0.5


def test_rl_stops_early_when_the_ensembles_disagreement_rises(
    base_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rising_disagreement(self: EnsembleReward, conversations: list) -> tuple:
        spread = 0.1 * 2 ** len(self.disagreement_history)  # doubles every batch
        return np.zeros(len(conversations)), np.full(len(conversations), spread)

    monkeypatch.setattr(EnsembleReward, "rewards_of", rising_disagreement)
    rl_cfg = RLConfig(
        **RL_CFG.model_dump()
        | {"max_steps": 6, "early_stop_disagreement_factor": 3.0, "early_stop_window": 1}
    )
    prompts = [_prompt(i) for i in range(8)]
    rm_cfg = ENSEMBLE_RM_CFG.model_copy(update={"max_steps": 1})
    result = train_rm_rl(
        base_checkpoint,
        PAIR_ROWS,
        prompts,
        tmp_path / "rl",
        rm_cfg,
        rl_cfg,
        seed=0,
        max_completion_tokens=4,
    )
    # 0.1, 0.2, 0.4 (4 x the first, above 3 x): stops after the third step of six
    assert result.metrics["rl_stopped_early"] is True
    assert result.metrics["rl_stop_step"] == 3 and result.metrics["n_steps"] == 3
    assert "rose above 3" in result.metrics["rl_stop_reason"]
    assert result.metrics["rl_disagreement_last"] == pytest.approx(0.4)
    assert (tmp_path / "rl").is_dir()  # a stopped run still publishes its policy
