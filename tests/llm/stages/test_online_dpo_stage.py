"""The online-dpo stage trains as the other stages do: DPO on its pairs from the champion (the
champion as reference), with LoRA in process and under `accelerate launch` with two processes
(the stage and its config rebuilt from the job file through the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flywheel.config import TrainingConfig
from flywheel.llm.launcher import StageJob, launch_stage
from flywheel.llm.stages.online_dpo import OnlineDpoConfig
from flywheel.llm.stages.registry import stage_named
from flywheel.llm.stages.spec import StageRun
from tests.llm.stages.test_new_stages_launch import LORA, PAIR_ROWS, SHARED


def _changed(base: Path, out: Path) -> bool:
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    return any(not torch.equal(before[name], after[name]) for name in before)


def test_online_dpo_trains_a_lora_candidate_with_the_champion_as_reference(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r2-online-dpo"
    run = StageRun(
        base_path=base_checkpoint,
        rows=PAIR_ROWS,
        out_path=out,
        settings={"online_dpo": OnlineDpoConfig(**SHARED, n_samples=3)},
        seed=0,
        setup=LORA,
    )
    result = stage_named("online-dpo").train(run)
    assert result.hyperparams["stage"] == "online-dpo" and result.hyperparams["n_samples"] == 3
    assert result.metrics["reference"] == "adapter disabled"  # the champion, adapter switched off
    assert result.metrics["n_trainable_parameters"] < 99968 and result.first_loss is not None
    assert (out / "adapter").is_dir() and _changed(base_checkpoint, out)


@pytest.mark.slow
def test_online_dpo_under_accelerate_with_two_processes_trains(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "models" / "r2-online-dpo"
    job = StageJob(
        stage="online-dpo",
        version_id=out.name,
        base_path=str(base_checkpoint),
        out_path=str(out),
        seed=0,
        settings={"online_dpo": {**SHARED, "batch_size": 2, "temperature": 0.8}},
        setup={"lora": None, "cpu_threads": 1},
        rows=PAIR_ROWS,
    )
    training = TrainingConfig(
        output_dir=str(tmp_path / "models"), launcher="accelerate", num_processes=2, cpu_threads=2
    )
    result = launch_stage(job, training)
    assert result.hyperparams["launcher"]["exit_code"] == 0
    assert result.metrics["world_size"] == 2 and result.hyperparams["stage"] == "online-dpo"
    assert result.hyperparams["temperature"] == 0.8 and _changed(base_checkpoint, out)
