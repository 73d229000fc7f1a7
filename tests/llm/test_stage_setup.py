"""Training at scale on a tiny model: the checkpoint's own dtype, LoRA (adapter only), truncation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from flywheel.config import LoraConfig
from flywheel.errors import InputError
from flywheel.llm.checkpoints import generate_answers, save_checkpoint
from flywheel.llm.stage_setup import StageSetup, adaptable_modules, checkpoint_dtype
from flywheel.llm.stages.dpo import train_dpo
from flywheel.llm.stages.reward_model import train_reward_model
from flywheel.llm.stages.sft import train_sft
from flywheel.llm.trained_checkpoint import ADAPTER_DIR
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer
from tests.llm.stages.test_stages import CFG, DPO_CFG, PAIR_ROWS, SFT_ROWS, _prompt

LORA = StageSetup(lora=LoraConfig(enabled=True, r=4, alpha=8, target_modules=["q_proj", "v_proj"]))


def _tiny(dtype: torch.dtype, path: Path) -> Path:
    texts = [f"What is {i} plus {i + 1}? Answer: {2 * i + 1}" for i in range(50)]
    tokenizer = build_tokenizer(texts, vocab_size=300, whole_words={"What", "is", "plus", "Answer"})
    model = build_tiny_llama(
        tokenizer, seed=0, hidden_size=64, n_layers=2, n_heads=2, intermediate_size=128
    )
    return save_checkpoint(model.to(dtype), tokenizer, path)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(torch.float32, tmp_path_factory.mktemp("scale") / "base")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _size(path: Path) -> int:
    return (path / "model.safetensors").stat().st_size


def test_a_bf16_base_stays_bf16_after_a_stage(tmp_path: Path) -> None:
    base16 = _tiny(torch.bfloat16, tmp_path / "base16")
    out = tmp_path / "sft16"
    result = train_sft(base16, SFT_ROWS, out, CFG, seed=0)
    assert checkpoint_dtype(base16) == torch.bfloat16
    assert checkpoint_dtype(out) == torch.bfloat16
    assert abs(_size(out) - _size(base16)) / _size(base16) < 0.03
    assert result.hyperparams["checkpoint_dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(out).dtype == torch.bfloat16
    assert generate_answers(out, [_prompt(3)], max_new_tokens=3, device="cpu")[0].n_tokens <= 3


def _assert_only_adapted_weights_changed(base: Path, out: Path) -> None:
    before, after = _weights(base), _weights(out)
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed, "training changed no weight"
    assert all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in changed), changed
    adapter = out / ADAPTER_DIR
    assert (adapter / "adapter_config.json").is_file()
    restored = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    merged = restored.merge_and_unload().state_dict()
    for name in changed:
        assert torch.allclose(merged[name], after[name], atol=1e-5)


def test_sft_with_lora_trains_only_the_adapter(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft-lora"
    result = train_sft(base, SFT_ROWS, out, CFG, seed=0, setup=LORA)
    assert result.first_loss is not None and result.hyperparams["lora"]["r"] == 4
    n_weights = sum(t.numel() for t in _weights(base).values())
    assert 0 < result.metrics["n_trainable_parameters"] < n_weights / 10
    _assert_only_adapted_weights_changed(base, out)
    assert generate_answers(out, [_prompt(3)], max_new_tokens=3, device="cpu")[0].n_tokens <= 3


def test_dpo_with_lora_uses_the_adapter_off_as_reference(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo-lora"
    result = train_dpo(base, PAIR_ROWS, out, DPO_CFG, seed=0, setup=LORA)
    assert result.first_loss == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    assert result.metrics["reference"] == "adapter disabled"
    _assert_only_adapted_weights_changed(base, out)


def test_a_reward_model_with_lora_saves_its_score_head(base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "rm-lora"
    result = train_reward_model(base, PAIR_ROWS, out, CFG, seed=0, setup=LORA)
    assert result.last_loss is not None
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and (out / ADAPTER_DIR).is_dir()


def test_unknown_lora_target_modules_are_refused_before_training(
    base: Path, tmp_path: Path
) -> None:
    setup = StageSetup(lora=LoraConfig(enabled=True, target_modules=["q_proj", "query_key"]))
    with pytest.raises(InputError, match=r"query_key is not a module.*q_proj.*v_proj"):
        train_sft(base, SFT_ROWS, tmp_path / "bad", CFG, seed=0, setup=setup)
    assert not (tmp_path / "bad").exists()
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "embed_tokens"} <= set(adaptable_modules(base))


def test_rows_longer_than_max_length_are_counted(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    long_prompt = [{"role": "user", "content": " ".join(f"What is {i}?" for i in range(40))}]
    long_rows = [{"messages": long_prompt + SFT_ROWS[0]["messages"][1:]}] * 3
    result = train_sft(base, SFT_ROWS + long_rows, tmp_path / "short", CFG, seed=0)
    assert result.metrics["n_truncated"] == 3
    assert f"3 of {len(SFT_ROWS) + 3} mined rows are longer" in caplog.text


def test_cpu_threads_come_from_the_setting_not_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.llm import checkpoints

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(checkpoints, "_configured_cpu_threads", None)
    monkeypatch.setattr(checkpoints.os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    assert checkpoints.cpu_threads() == checkpoints.DEFAULT_CPU_THREADS
    checkpoints.configure_cpu_threads(3)
    assert checkpoints.cpu_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert checkpoints.cpu_threads() == 1


def test_gradient_accumulation_and_checkpointing_come_from_the_config(
    base: Path, tmp_path: Path
) -> None:
    cfg = CFG.model_copy(
        update={
            "max_steps": -1,
            "num_train_epochs": 1,
            "gradient_accumulation_steps": 3,
            "gradient_checkpointing": True,
        }
    )
    result = train_sft(base, SFT_ROWS, tmp_path / "accumulated", cfg, seed=0)
    assert result.metrics["n_steps"] == 1  # 12 rows, 3 batches of 4, one optimizer step
    assert result.hyperparams["gradient_accumulation_steps"] == 3
    assert result.hyperparams["gradient_checkpointing"] is True


@pytest.mark.slow
def test_rm_then_rl_with_lora_trains_adapters_for_both(base: Path, tmp_path: Path) -> None:
    from flywheel.llm.stages.rm_rl import reward_model_path, train_rm_rl
    from tests.llm.stages.test_stages import RL_CFG

    out = tmp_path / "rl-lora"
    prompts = [_prompt(i) for i in range(8)]
    result = train_rm_rl(
        base, PAIR_ROWS, prompts, out, CFG, RL_CFG, seed=0, max_completion_tokens=6, setup=LORA
    )
    assert result.metrics["rl_first_reward"] is not None
    _assert_only_adapted_weights_changed(base, out)
    assert (reward_model_path(out) / ADAPTER_DIR).is_dir()
