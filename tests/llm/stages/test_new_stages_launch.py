"""KTO and ORPO as the other stages run: with LoRA in process (the adapter trained and merged
into the candidate), and under `accelerate launch` with two processes (the stage rebuilt from
the job file through the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flywheel.config import LoraConfig, TrainingConfig
from flywheel.llm.launcher import StageJob, launch_stage
from flywheel.llm.stage_setup import StageSetup
from flywheel.llm.stages.kto import KtoConfig, train_kto
from flywheel.llm.stages.orpo import OrpoConfig, train_orpo


def _prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is {i} plus {i + 1}?"}]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


KTO_ROWS = [
    {"prompt": _prompt(i), "completion": _answer(f"Answer: {2 * i + 1 if i % 2 else i}"),
     "label": bool(i % 2)}
    for i in range(12)
]  # fmt: skip
PAIR_ROWS = [
    {"prompt": _prompt(i), "chosen": _answer(f"Answer: {2 * i + 1}"), "rejected": _answer(f"Answer: {i}")}
    for i in range(12)
]  # fmt: skip
SHARED = {"learning_rate": 1e-3, "max_steps": 3, "batch_size": 4, "max_length": 64}
LORA = StageSetup(lora=LoraConfig(enabled=True, r=4, alpha=8))


def _changed(base: Path, out: Path) -> bool:
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    return any(not torch.equal(before[name], after[name]) for name in before)


def test_kto_and_orpo_train_a_lora_adapter_merged_into_the_candidate(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    kto = train_kto(base_checkpoint, KTO_ROWS, tmp_path / "kto", KtoConfig(**SHARED), 0, setup=LORA)
    orpo = train_orpo(
        base_checkpoint, PAIR_ROWS, tmp_path / "orpo", OrpoConfig(**SHARED), 0, setup=LORA
    )
    for result, out in ((kto, tmp_path / "kto"), (orpo, tmp_path / "orpo")):
        assert result.hyperparams["lora"]["r"] == 4
        assert result.metrics["n_trainable_parameters"] < 99968  # the adapter's, not the model's
        assert (out / "adapter").is_dir() and _changed(base_checkpoint, out)


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "rows"), [("kto", KTO_ROWS), ("orpo", PAIR_ROWS)])
def test_kto_and_orpo_under_accelerate_with_two_processes_train(
    base_checkpoint: Path, tmp_path: Path, stage: str, rows: list[dict]
) -> None:
    out = tmp_path / "models" / f"r1-{stage}"
    job = StageJob(
        stage=stage,
        version_id=out.name,
        base_path=str(base_checkpoint),
        out_path=str(out),
        seed=0,
        settings={stage: {**SHARED, "batch_size": 2}},
        setup={"lora": None, "cpu_threads": 1},
        rows=rows,
    )
    training = TrainingConfig(
        output_dir=str(tmp_path / "models"), launcher="accelerate", num_processes=2, cpu_threads=2
    )
    result = launch_stage(job, training)
    assert result.hyperparams["launcher"]["exit_code"] == 0
    assert result.metrics["world_size"] == 2 and result.hyperparams["stage"] == stage
    assert _changed(base_checkpoint, out)
