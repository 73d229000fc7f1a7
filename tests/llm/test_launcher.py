"""`training.launcher: accelerate`: stages as `accelerate launch` subprocesses (CPU, gloo ranks)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from transformers import AutoModelForCausalLM

from flywheel.config import Config, TrainingConfig
from flywheel.errors import InputError
from flywheel.llm import launch_checks
from flywheel.llm.launch_checks import launcher_problems
from flywheel.llm.launcher import StageJob, StageLaunchError, launch_command, launch_stage
from flywheel.llm.stage_setup import checkpoint_dtype
from flywheel.llm.stages.registry import stage_named
from flywheel.llm.stages.settings import StageTrainingConfig
from flywheel.tasks import train as train_step
from flywheel.tasks.mine import TrainingRows
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect_warehouse
from tests.conftest import load_config_in
from tests.llm.stages.test_stages import PAIR_ROWS, SFT_ROWS
from tests.llm.test_stage_setup import _tiny

CFG = StageTrainingConfig(learning_rate=1e-3, max_steps=6, batch_size=2, max_length=64)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(torch.bfloat16, tmp_path_factory.mktemp("launch") / "base")


def _training(tmp_path: Path, **updates: object) -> TrainingConfig:
    settings = {
        "output_dir": str(tmp_path / "models"),
        "launcher": "accelerate",
        "num_processes": 2,
        "cpu_threads": 2,
    }
    return TrainingConfig(**{**settings, **updates})


def _job(stage: str, base: Path, out: Path, rows: list[dict]) -> StageJob:
    return StageJob(
        stage=stage,
        version_id=out.name,
        base_path=str(base),
        out_path=str(out),
        seed=0,
        settings={key: CFG.model_dump() for key in stage_named(stage).sections},
        setup={"lora": None, "cpu_threads": 1},
        rows=rows,
    )


def _assert_launched_and_loaded(result: object, out: Path) -> None:
    assert result.first_loss is not None and result.last_loss < result.first_loss
    launcher = result.hyperparams["launcher"]
    assert launcher["exit_code"] == 0 and launcher["num_processes"] == 2
    assert "--num_processes 2" in launcher["command"]
    assert "'loss'" in Path(launcher["log_path"]).read_text()  # rank 0's log lines
    assert result.metrics["world_size"] == 2
    assert checkpoint_dtype(out) == torch.bfloat16  # the base's dtype
    AutoModelForCausalLM.from_pretrained(out)
    assert not (out.parent / ".scratch").exists()


def test_sft_under_accelerate_with_two_processes_trains(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "r1-sft"
    result = launch_stage(_job("sft", base, out, SFT_ROWS), _training(tmp_path))
    _assert_launched_and_loaded(result, out)


@pytest.mark.slow
def test_dpo_under_accelerate_with_two_processes_trains(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "r1-dpo"
    result = launch_stage(_job("dpo", base, out, PAIR_ROWS), _training(tmp_path))
    _assert_launched_and_loaded(result, out)
    assert result.first_loss == pytest.approx(0.6931, abs=1e-3)


def test_a_crashing_stage_fails_with_its_log_tail_and_publishes_nothing(
    base: Path, tmp_path: Path
) -> None:
    out = tmp_path / "models" / "r1-dpo"
    broken = [{"prompt": row["prompt"]} for row in PAIR_ROWS]  # no chosen/rejected
    with pytest.raises(StageLaunchError) as failure:
        launch_stage(_job("dpo", base, out, broken), _training(tmp_path, num_processes=1))
    message = str(failure.value)
    assert "exited with status 1" in message and "champion is kept" in message
    assert "KeyError" in message and "Fix: read the whole log at" in message
    assert not out.exists()


def test_launcher_settings_are_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert launcher_problems(TrainingConfig()) == []  # in_process: nothing to check
    too_many = launcher_problems(_training(tmp_path, num_processes=10_000))
    assert len(too_many) == 1 and "training.num_processes = 10000" in too_many[0]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("distributed_type: [MULTI_GPU\n")
    (problem,) = launcher_problems(_training(tmp_path, accelerate_config_file=str(bad_yaml)))
    assert "does not parse" in problem and "bad.yaml" in problem
    bad_ds = tmp_path / "ds.yaml"
    bad_ds.write_text(f"deepspeed_config: {{deepspeed_config_file: {tmp_path / 'zero3.json'}}}\n")
    (tmp_path / "zero3.json").write_text("{zero_optimization: 3")
    (problem,) = launcher_problems(_training(tmp_path, accelerate_config_file=str(bad_ds)))
    assert "zero3.json" in problem and "JSON" in problem
    monkeypatch.setattr(launch_checks, "launcher_executable", lambda: None)
    (problem,) = launcher_problems(_training(tmp_path))
    assert "`accelerate` command is not installed" in problem


def test_several_processes_without_a_config_file_use_the_multi_process_launcher(
    tmp_path: Path,
) -> None:
    command = launch_command(_training(tmp_path), Path("job.json"))
    assert command[1:3] == ["launch", "--num_processes"] and "--multi_gpu" in command
    assert command[-3:] == ["-m", "flywheel.llm.stage_entry", "job.json"]
    one = launch_command(_training(tmp_path, num_processes=1), Path("job.json"))
    assert "--multi_gpu" not in one
    configured = launch_command(
        _training(tmp_path, accelerate_config_file="fsdp.yaml"), Path("job.json")
    )
    assert "--multi_gpu" not in configured and "fsdp.yaml" in configured


def _candidates(config: Config) -> list[str]:
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute("select version_id from model_versions order by 1").fetchall()
    return [version for (version,) in rows]


def _kill_launcher_when_training(log_dir: Path, stop: threading.Event) -> None:
    """Kill `accelerate launch` (SIGKILL) once its log shows a training step."""
    me = psutil.Process()
    while not stop.is_set():
        logs = list(log_dir.glob("*.log")) if log_dir.is_dir() else []
        if any("'loss'" in log.read_text(errors="replace") for log in logs):
            for child in me.children(recursive=True):
                if "launch" in child.cmdline() and any("accelerate" in a for a in child.cmdline()):
                    child.kill()
                    return
        stop.wait(0.2)


def _no_process_left(marker: str, timeout_s: float = 120.0) -> bool:
    """Wait until no process has `marker` in its command line (the ranks exit within seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [
            p
            for p in psutil.process_iter(["cmdline"])
            if any(marker in arg for arg in (p.info["cmdline"] or []))
        ]
        if not left:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_a_killed_launcher_publishes_nothing_and_a_rerun_gives_one_candidate(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_sft = {"max_steps": 400, "batch_size": 2, "max_length": 64, "min_examples": 1}
    config = load_config_in(tmp_path)
    training = config.training.model_dump() | {
        "launcher": "accelerate",
        "num_processes": 2,
        "cpu_threads": 2,
        "sft": slow_sft,
    }
    config = config.model_copy(update={"training": TrainingConfig(**training)})
    monkeypatch.setattr(
        train_step, "training_mix", lambda *args: TrainingRows(SFT_ROWS, len(SFT_ROWS), 0, 0, None)
    )
    champion = ModelVersion("v0", str(base), "champion")
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_launcher_when_training,
        args=(Path(config.training.output_dir) / "launch-logs", stop),
    )
    killer.start()
    try:
        killed = train_step.run_training_stage(config, 1, "sft", champion)
    finally:
        stop.set()
        killer.join()
    assert killed.status == "failed" and "exited with status -9" in killed.reason
    assert "Last lines of its log" in killed.reason
    out = Path(config.training.output_dir) / "r1-sft"
    assert not out.exists() and _candidates(config) == []
    assert _no_process_left(str(tmp_path)), "a rank of the killed launcher is still running"
    quick = {**slow_sft, "max_steps": 4}
    config = config.model_copy(
        update={
            "training": config.training.model_copy(update={"sft": StageTrainingConfig(**quick)})
        }
    )
    rerun = train_step.run_training_stage(config, 1, "sft", champion)
    assert rerun.status == "done" and rerun.candidate_path == str(out), rerun.reason
    assert _candidates(config) == ["r1-sft"]
    AutoModelForCausalLM.from_pretrained(out)


def test_lora_targets_are_checked_before_launching(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config_in(tmp_path)
    training = config.training.model_dump() | {
        "launcher": "accelerate",
        "num_processes": 1,
        "lora": {"enabled": True, "target_modules": ["nope"]},
    }
    config = config.model_copy(update={"training": TrainingConfig(**training)})
    launched: list[object] = []
    monkeypatch.setattr(train_step, "launch_stage", lambda *args: launched.append(args))
    with pytest.raises(InputError, match="nope is not a module"):
        train_step._launch(config, 1, stage_named("sft"), str(base), SFT_ROWS, tmp_path / "out")
    assert launched == []


def test_lora_with_sharded_weights_is_refused(tmp_path: Path) -> None:
    zero3 = tmp_path / "zero3.yaml"
    zero3.write_text("distributed_type: DEEPSPEED\ndeepspeed_config: {zero_stage: 3}\n")
    lora = {"enabled": True}
    problems = launcher_problems(_training(tmp_path, accelerate_config_file=str(zero3), lora=lora))
    assert any("shards the model (FSDP or ZeRO-3)" in p for p in problems)
    fsdp = tmp_path / "fsdp.yaml"
    fsdp.write_text("distributed_type: FSDP\n")
    assert launcher_problems(_training(tmp_path, accelerate_config_file=str(fsdp))) == []


def test_an_out_of_memory_stage_names_the_fix(tmp_path: Path) -> None:
    from flywheel.llm.launcher import _failure_fix

    log = tmp_path / "stage.log"
    fix = _failure_fix("dpo", "torch.OutOfMemoryError: CUDA out of memory.", 1, log)
    assert "training.dpo.batch_size" in fix and "gradient_checkpointing" in fix
    assert "training.lora.enabled" in fix and "ZeRO-3" in fix
    assert "out of memory (or killed)" in _failure_fix("sft", "", -9, log)
    assert _failure_fix("sft", "KeyError: 'chosen'", 1, log).startswith("read the whole log")


@pytest.mark.slow
def test_a_reward_model_ensemble_under_accelerate_with_two_processes_trains(
    base: Path, tmp_path: Path
) -> None:
    from flywheel.llm.stages.reward_model import RewardModelConfig
    from flywheel.llm.stages.rm_rl import RLConfig
    from tests.llm.stages.test_stages import RL_CFG, _prompt

    out = tmp_path / "models" / "r1-rm-rl"
    rm_cfg = RewardModelConfig(**CFG.model_dump() | {"max_steps": 2}, ensemble_size=2)
    rl_cfg = RLConfig(
        **RL_CFG.model_dump()
        | {"disagreement_penalty": 0.5, "early_stop_disagreement_factor": 50.0}
    )
    job = StageJob(
        stage="rm+rl",
        version_id=out.name,
        base_path=str(base),
        out_path=str(out),
        seed=0,
        settings={"rm": rm_cfg.model_dump(), "rl": rl_cfg.model_dump()},
        setup={"lora": None, "cpu_threads": 1},
        rows=PAIR_ROWS,
        prompts=[_prompt(i) for i in range(8)],
        max_completion_tokens=4,
    )
    result = launch_stage(job, _training(tmp_path))
    assert result.metrics["world_size"] == 2 and result.metrics["rm_ensemble_size"] == 2
    assert result.metrics["rl_disagreement_first"] is not None
    assert (out.parent / "r1-rm-rl-rm" / "member-1").is_dir()
    AutoModelForCausalLM.from_pretrained(out)
