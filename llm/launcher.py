"""`training.launcher: accelerate`: a stage runs as an `accelerate launch` subprocess and is waited for.

`launch_stage` exports the stage's rows to JSONL in a scratch directory, writes the job file that
`flywheel.llm.stage_entry` reads, runs

    accelerate launch --num_processes N [--config_file F] -m flywheel.llm.stage_entry job.json

with its output in a log file, and waits. The launcher runs in its own process group, which is
killed when it exits or when the flow is interrupted; its ranks (torch starts them in their own
session) exit by themselves when the launcher or this process is gone (stage_entry.py). A non-zero exit
raises `StageLaunchError` with the exit status, the log's last lines and the fix; the checkpoint is
published by rank 0 only when complete, so a failed or killed launch leaves none.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import TrainingConfig
from flywheel.llm.launch_checks import launcher_executable
from flywheel.llm.stage_entry import FLYWHEEL_PID_ENV, write_jsonl
from flywheel.llm.stages.outputs import SCRATCH_DIR
from flywheel.llm.stages.registry import stage_named
from flywheel.llm.stages.spec import TrainResult

LOG_DIR = "launch-logs"
TAIL_LINES = 25
TAIL_CHARS = 1500
STOP_GRACE_S = 20
OOM_MARKERS = ("out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED")


class StageLaunchError(RuntimeError):
    """The launched stage exited non-zero; the message has its log's last lines and the fix."""


@dataclass(frozen=True)
class StageJob:
    """What one launched stage trains: its `job.json` fields, less the paths launch_stage adds."""

    stage: str
    version_id: str
    base_path: str
    out_path: str
    seed: int
    settings: dict[str, dict[str, Any]]  # training.<key> -> its dumped config, for each section
    setup: dict[str, Any]
    rows: list[dict[str, Any]]
    prompts: list[Any] | None = None
    max_completion_tokens: int = 48


def launch_command(training: TrainingConfig, job_path: Path) -> list[str]:
    """`accelerate launch ...` for the job; several processes without a config file use
    accelerate's multi-process launcher (gloo on CPU, NCCL on GPUs)."""
    command = [launcher_executable() or "accelerate", "launch"]
    command += ["--num_processes", str(training.num_processes), "--num_machines", "1"]
    if training.accelerate_config_file is not None:
        command += ["--config_file", training.accelerate_config_file]
    else:
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        if training.num_processes > 1:
            command.append("--multi_gpu")
    return [*command, "-m", "flywheel.llm.stage_entry", str(job_path)]


def log_tail(log_path: Path, n_lines: int = TAIL_LINES, n_chars: int = TAIL_CHARS) -> str:
    """The last lines of a log file (at most `n_chars`)."""
    if not log_path.is_file():
        return ""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n_lines:]
    return "\n".join(lines)[-n_chars:]


def _failure_fix(stage: str, tail: str, exit_code: int, log_path: Path) -> str:
    section = f"training.{stage_named(stage).main_section}"
    if exit_code in (-signal.SIGKILL, 137) or any(m in tail for m in OOM_MARKERS):
        return (
            f"out of memory (or killed): lower {section}.batch_size (raise "
            f"gradient_accumulation_steps to keep the batch), set {section}."
            "gradient_checkpointing: true or training.lora.enabled: true, or use a DeepSpeed "
            f"ZeRO-3 / FSDP training.accelerate_config_file; the whole log is {log_path}"
        )
    return f"read the whole log at {log_path}, correct the cause and run again"


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Terminate the launcher's process group (SIGTERM, then SIGKILL after a grace period)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(process.pid)
    process.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _write_job(job: StageJob, work_dir: Path) -> Path:
    rows_path = work_dir / "rows.jsonl"
    write_jsonl(rows_path, job.rows)
    fields: dict[str, Any] = {
        "stage": job.stage,
        "base_path": job.base_path,
        "out_path": job.out_path,
        "seed": job.seed,
        "settings": job.settings,
        "setup": job.setup,
        "max_completion_tokens": job.max_completion_tokens,
        "rows_path": str(rows_path),
        "result_path": str(work_dir / "result.json"),
    }
    if job.prompts is not None:
        fields["prompts_path"] = str(work_dir / "prompts.jsonl")
        write_jsonl(fields["prompts_path"], job.prompts)
    job_path = work_dir / "job.json"
    job_path.write_text(json.dumps(fields), encoding="utf-8")
    return job_path


def _result(path: Path, launch_info: dict[str, Any]) -> TrainResult:
    data = json.loads(path.read_text(encoding="utf-8"))
    return TrainResult(
        output_path=Path(data["output_path"]),
        n_examples=data["n_examples"],
        first_loss=data["first_loss"],
        last_loss=data["last_loss"],
        wall_s=data["wall_s"],
        hyperparams={**data["hyperparams"], "launcher": launch_info},
        metrics=data["metrics"],
    )


def launch_stage(job: StageJob, training: TrainingConfig) -> TrainResult:
    """Run the job under `accelerate launch`, wait, and return its `TrainResult`."""
    output_dir = Path(training.output_dir)
    log_dir = output_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    scratch_root = output_dir / SCRATCH_DIR
    scratch_root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(
            prefix=f"launch-{job.version_id}-", dir=scratch_root
        ) as work:
            job_path = _write_job(job, Path(work))
            command = launch_command(training, job_path)
            log_path = log_dir / f"{job.version_id}-{Path(work).name.rsplit('-', 1)[-1]}.log"
            exit_code = _run_launcher(command, log_path)
            tail = log_tail(log_path)
            launch_info = {
                "kind": "accelerate",
                "num_processes": training.num_processes,
                "config_file": training.accelerate_config_file,
                "command": " ".join(command),
                "exit_code": exit_code,
                "log_path": str(log_path),
                "log_tail": tail[-600:],
            }
            result_path = Path(work) / "result.json"
            if exit_code != 0 or not result_path.is_file():
                raise StageLaunchError(
                    f"the {job.stage} stage under `accelerate launch` exited with status {exit_code}"
                    f"{'' if exit_code else ' without a result'}; the champion is kept. Fix: "
                    f"{_failure_fix(job.stage, tail, exit_code, log_path)}.\n"
                    f"Last lines of its log:\n{tail}"
                )
            return _result(result_path, launch_info)
    finally:
        with contextlib.suppress(OSError):  # not empty: another stage is training
            scratch_root.rmdir()


def _run_launcher(command: list[str], log_path: Path) -> int:
    """Run `command` in its own process group, output to `log_path`; return its exit status.

    The group is killed when the launcher exits (stray ranks) and when this process is
    interrupted while waiting (the interruption is re-raised).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", FLYWHEEL_PID_ENV: str(os.getpid())}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            exit_code = process.wait()
        except BaseException:
            _stop_group(process)
            raise
        _kill_group(process.pid)
    return exit_code
