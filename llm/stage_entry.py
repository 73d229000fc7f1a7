"""The one training-stage entry point that `accelerate launch` runs (training.launcher: accelerate).

`accelerate launch --num_processes N -m flywheel.llm.stage_entry <job.json>` runs this module in
every process. The job file (written by llm/launcher.py) names the stage, the base checkpoint,
the output path, the stage's config sections (dumped, and rebuilt here through the stage
registry) and the JSONL files of rows exported for it. Each process trains
its share of the batches; rank 0 alone writes the checkpoint (through a staging directory,
renamed into place when complete) and then `result.json`, the stage's `TrainResult`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flywheel.config import LoraConfig
from flywheel.llm.stages.registry import stage_named
from flywheel.llm.stages.spec import StageRun, TrainResult

FLYWHEEL_PID_ENV = "FLYWHEEL_TRAINING_PARENT_PID"
ORPHAN_POLL_S = 1.0
ORPHAN_EXIT_CODE = 3


def read_jsonl(path: str | Path) -> list[Any]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str | Path, rows: list[Any]) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def _setup(job: dict[str, Any]) -> Any:
    from flywheel.llm.stage_setup import StageSetup

    lora = job["setup"].get("lora")
    return StageSetup(
        lora=LoraConfig(**lora) if lora else None, cpu_threads=job["setup"].get("cpu_threads")
    )


def run_job(job: dict[str, Any]) -> TrainResult:
    """Train the job's stage: its config sections rebuilt by the stage's own classes."""
    from flywheel.llm.stages import common

    common.ECHO_LOGS = True  # TRL's log lines go to the launcher's log file (rank 0 prints)
    stage = stage_named(job["stage"])
    settings = {key: stage.sections[key](**job["settings"][key]) for key in stage.sections}
    run = StageRun(
        base_path=job["base_path"],
        rows=read_jsonl(job["rows_path"]),
        out_path=job["out_path"],
        settings=settings,
        seed=job["seed"],
        setup=_setup(job),
        prompts=read_jsonl(job["prompts_path"]) if "prompts_path" in job else None,
        max_completion_tokens=job["max_completion_tokens"],
    )
    return stage.train(run)


def write_result(result: Any, path: str | Path) -> None:
    """`result.json`, renamed into place complete."""
    target = Path(path)
    staging = target.with_name(target.name + ".tmp")
    staging.write_text(json.dumps(asdict(result), default=str), encoding="utf-8")
    os.replace(staging, target)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_when_orphaned(poll_s: float = ORPHAN_POLL_S) -> None:
    """Exit at once when the launcher that started this rank, or the flywheel process that
    started the launcher, is gone: a killed launcher's ranks (torch starts them in their own
    session) must not train on and publish a checkpoint behind the rerun's back."""
    launcher_pid = os.getppid()
    flywheel_pid = int(os.environ.get(FLYWHEEL_PID_ENV, "0"))

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != launcher_pid or (flywheel_pid and not _alive(flywheel_pid)):
                os._exit(ORPHAN_EXIT_CODE)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m flywheel.llm.stage_entry <job.json>", file=sys.stderr)
        return 2
    exit_when_orphaned()
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result = run_job(job)
    if int(os.environ.get("RANK", "0")) == 0:
        write_result(result, job["result_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
