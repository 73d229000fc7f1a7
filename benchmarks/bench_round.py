"""Wall time per step of one demo round, and the share of it spent in Prefect itself.

Runs `prepare` and round 1 of configs/demo.yaml (paths moved to a scratch directory) on
Prefect's temporary local server, then reads each task run's duration back from Prefect.
Prefect's share = (round flow wall time - time inside the steps) / round flow wall time.

    python benchmarks/bench_round.py [--config configs/demo.yaml] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml


def scratch_config(config_path: str, workdir: Path) -> Path:
    data = yaml.safe_load(Path(config_path).read_text())
    data["warehouse"]["path"] = str(workdir / "flywheel.duckdb")
    data["student"]["path"] = str(workdir / "student")
    data["training"]["output_dir"] = str(workdir / "models")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


STEPS = ("draw", "answer", "judge", "mine", "train", "evaluate", "promote", "report")


def finished_step_times(wait_s: float = 60.0) -> dict[str, float]:
    """Seconds inside each step, read from Prefect once its task-run recorder has caught up."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + wait_s
    while True:
        with get_client(sync_client=True) as client:
            runs = [r for r in client.read_task_runs() if r.name.rsplit("-", 1)[0] in STEPS]
        step_s = {
            r.name.rsplit("-", 1)[0]: r.total_run_time.total_seconds() for r in runs if r.end_time
        }
        if len(step_s) == len(STEPS) and all(step_s.values()) or time.monotonic() > deadline:
            return step_s
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-round-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))

    from flywheel.config import load_config
    from flywheel.flows.flywheel_flow import arena, prepare, stage_of
    from flywheel.flows.prefect_env import quiet_prefect_defaults
    from flywheel.flows.round import arena_round

    quiet_prefect_defaults()
    config = load_config(scratch_config(args.config, workdir))
    started = time.perf_counter()
    prepare.fn(config)
    prepare_s = time.perf_counter() - started
    with arena(config) as sandbox_url:
        started = time.perf_counter()
        arena_round(config, 1, stage_of(config, 1), sandbox_url)
        round_s = time.perf_counter() - started

    step_s = finished_step_times()
    in_steps_s = sum(step_s.values())
    figures = {
        "benchmark": "round",
        "config": args.config,
        "prepare_s": round(prepare_s, 1),
        "round_wall_s": round(round_s, 1),
        "step_s": {name: round(seconds, 2) for name, seconds in step_s.items()},
        "prefect_s": round(round_s - in_steps_s, 2),
        "prefect_share": round((round_s - in_steps_s) / round_s, 4),
    }
    for name, seconds in step_s.items():
        print(f"{name:>10}: {seconds:7.1f} s")
    print(
        f"round wall {round_s:.1f} s, in Prefect itself {round_s - in_steps_s:.1f} s "
        f"({figures['prefect_share']:.1%}); prepare (student, pool, eval split) {prepare_s:.1f} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
