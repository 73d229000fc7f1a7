"""Every stage on the real pretrained chat model (SmolLM2-135M-Instruct, ChatML without
`{% generation %}` markers), 1-2 steps each with tiny settings: SFT trains on prompt/completion
rows, LoRA too, DPO and the rm+rl stage run, and each candidate keeps the base's chat template,
generation settings and tokenizer limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer, GenerationConfig

from flywheel.config import LoraConfig
from flywheel.llm.checkpoints import generate_answers
from flywheel.llm.stage_setup import StageSetup
from flywheel.llm.stages.dpo import DpoConfig, train_dpo
from flywheel.llm.stages.rm_rl import RLConfig, train_rm_rl
from flywheel.llm.stages.settings import StageTrainingConfig
from flywheel.llm.stages.sft import train_sft

pytestmark = pytest.mark.slow

CFG = StageTrainingConfig(learning_rate=1e-5, max_steps=2, batch_size=2, max_length=96)
RL_CFG = RLConfig(learning_rate=1e-6, max_steps=1, batch_size=2, num_generations=2, beta=0.05)
LORA = StageSetup(lora=LoraConfig(enabled=True, r=4, alpha=8, target_modules=["q_proj", "v_proj"]))


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} plus {i + 1}?"}]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


SFT_ROWS = [{"messages": _prompt(i) + _answer(f"Answer: {2 * i + 1}")} for i in range(4)]
PAIR_ROWS = [
    {"prompt": _prompt(i), "chosen": _answer(f"Answer: {2 * i + 1}"), "rejected": _answer("No.")}
    for i in range(4)
]


def _assert_keeps_the_base_settings(base: Path, candidate: Path) -> None:
    config = json.loads((candidate / "config.json").read_text())
    assert config.get("use_cache", True) is True, "a candidate must generate with its cache"
    base_generation = GenerationConfig.from_pretrained(base).to_diff_dict()
    candidate_generation = GenerationConfig.from_pretrained(candidate).to_diff_dict()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        assert candidate_generation.get(key) == base_generation.get(key), key
    tokenizer = AutoTokenizer.from_pretrained(candidate)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(base).chat_template
    assert tokenizer.model_max_length == 8192
    (answer,) = generate_answers(candidate, [_prompt(3)], max_new_tokens=12, device="cpu")
    assert answer.text


def test_sft_on_a_template_without_markers_trains_on_the_completion(
    real_checkpoint: Path, tmp_path: Path
) -> None:
    result = train_sft(real_checkpoint, SFT_ROWS, tmp_path / "sft", CFG, seed=0)
    assert result.hyperparams["loss_on"] == "completion (prompt/completion rows)"
    assert result.first_loss is not None and result.metrics["n_steps"] == 2
    _assert_keeps_the_base_settings(real_checkpoint, tmp_path / "sft")


def test_sft_with_lora_on_the_real_model(real_checkpoint: Path, tmp_path: Path) -> None:
    result = train_sft(real_checkpoint, SFT_ROWS, tmp_path / "lora", CFG, seed=0, setup=LORA)
    assert result.hyperparams["lora"]["r"] == 4 and result.first_loss is not None
    _assert_keeps_the_base_settings(real_checkpoint, tmp_path / "lora")


def test_dpo_on_the_real_model(real_checkpoint: Path, tmp_path: Path) -> None:
    cfg = DpoConfig(**CFG.model_dump())
    result = train_dpo(real_checkpoint, PAIR_ROWS, tmp_path / "dpo", cfg, seed=0)
    assert result.first_loss == pytest.approx(0.6931, abs=1e-2)  # policy == reference at step 1
    _assert_keeps_the_base_settings(real_checkpoint, tmp_path / "dpo")


def test_rm_then_rl_on_the_real_model(real_checkpoint: Path, tmp_path: Path) -> None:
    prompts = [_prompt(i) for i in range(2)]
    rm_cfg = CFG.model_copy(update={"max_steps": 1})
    result = train_rm_rl(
        real_checkpoint,
        PAIR_ROWS,
        prompts,
        tmp_path / "rl",
        rm_cfg,
        RL_CFG,
        seed=0,
        max_completion_tokens=6,
    )
    assert result.metrics["rl_first_reward"] is not None
    _assert_keeps_the_base_settings(real_checkpoint, tmp_path / "rl")
