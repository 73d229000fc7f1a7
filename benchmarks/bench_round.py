"""Wall time per step of one demo round, and the share of it spent in Prefect itself.

Runs `prepare` and round 1 of configs/demo.yaml (paths moved to a scratch directory) on
flywheel's temporary Prefect server, started first (with the client's once-per-process check of
the server's API version) and timed on its own line. Each step's body
is timed from the inside (its task function is wrapped), and so are the round's warehouse
bookkeeping calls in the flow body (start, time, done) and Prefect's artifact calls inside the
steps (progress, summary, metrics). Prefect's time is what remains of the round flow's wall
time (flow and task runs, their states, parameters and futures) plus the artifact calls.

    prefect share = (round wall - (step bodies - artifact calls) - bookkeeping) / round wall

    python benchmarks/bench_round.py [--config configs/demo.yaml] [--workdir DIR] [--rounds N]

The round-0 student comes from the student cache when it holds this recipe's build (else it is
built first; `prepare_s` says which). Prints one line per step, the shares, and a JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

STEPS = (
    "draw",
    "answer",
    "select",
    "judge",
    "mine",
    "train",
    "general",
    "evaluate",
    "promote",
    "report",
)
BOOKKEEPING = ("start_round", "add_round_time", "mark_round_done")
ARTIFACT_CALLS = (
    "create_progress_artifact",
    "update_progress_artifact",
    "create_markdown_artifact",
    "create_table_artifact",
)


def scratch_config(config_path: str, workdir: Path) -> Path:
    data = yaml.safe_load(Path(config_path).read_text())
    data["warehouse"]["path"] = str(workdir / "flywheel.duckdb")
    data["student"]["path"] = str(workdir / "student")
    data["training"]["output_dir"] = str(workdir / "models")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BACKGROUND = " (background)"


def timed(fn: Callable[..., Any], name: str, seconds: dict[str, float]) -> Callable[..., Any]:
    """`fn`, adding its wall time to `seconds[name]` at each call (`name (background)` when
    called from flywheel's progress-artifact threads, which no step waits for)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            in_background = threading.current_thread().name.startswith("progress-")
            seconds[name + (BACKGROUND if in_background else "")] += time.perf_counter() - started

    return wrapper


def instrument_round(step_s: dict[str, float], bookkeeping_s: dict[str, float]) -> None:
    """Time each step's task body and the flow body's warehouse calls, from the inside."""
    from flywheel.flows import round as round_flow

    tasks = {
        "draw": round_flow.draw_prompts,
        "answer": round_flow.answer,
        "select": round_flow.select,
        "judge": round_flow.judge,
        "mine": round_flow.mine,
        "train": round_flow.train,
        "general": round_flow.general_check,
        "evaluate": round_flow.evaluate,
        "promote": round_flow.promote,
        "report": round_flow.report,
    }
    for name, step in tasks.items():
        step.fn = timed(step.fn, name, step_s)
    for name in BOOKKEEPING:
        setattr(round_flow, name, timed(getattr(round_flow, name), name, bookkeeping_s))


def instrument_artifacts(artifact_s: dict[str, float]) -> None:
    """Time Prefect's artifact API calls made from inside the steps (they are Prefect's time)."""
    import prefect.artifacts

    for name in ARTIFACT_CALLS:
        wrapped = timed(getattr(prefect.artifacts, name), name, artifact_s)
        setattr(prefect.artifacts, name, wrapped)
        for module in _modules_calling_artifacts():
            if hasattr(module, name):
                setattr(module, name, wrapped)


def _modules_calling_artifacts() -> list[Any]:
    """Our modules that may hold their own reference to an artifact function."""
    from flywheel.flows import progress
    from flywheel.tasks import report

    return [progress, report]


def first_api_call() -> None:
    """Prefect's once-per-process client check of the server's API version."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.raise_for_api_version_mismatch_once()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--rounds", type=int, default=1, help="rounds to time (each reported)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-round-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(workdir / "prefect"))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

    from flywheel.flows.prefect_env import quiet_prefect_defaults

    quiet_prefect_defaults()
    from flywheel.config import load_config
    from flywheel.flows.flywheel_flow import arena, prepare, stage_of
    from flywheel.flows.round import arena_round
    from flywheel.flows.temporary_server import temporary_prefect_server

    config = load_config(scratch_config(args.config, workdir))
    started = time.perf_counter()
    with temporary_prefect_server():
        first_api_call()  # once per process; in `flywheel run` the parent flow pays it
        server_s = time.perf_counter() - started
        started = time.perf_counter()
        prepare.fn(config)
        prepare_s = time.perf_counter() - started
        rounds = []
        with arena(config) as run_config:
            for round_id in range(1, args.rounds + 1):
                step_s: dict[str, float] = defaultdict(float)
                bookkeeping_s: dict[str, float] = defaultdict(float)
                artifact_s: dict[str, float] = defaultdict(float)
                instrument_round(step_s, bookkeeping_s)
                instrument_artifacts(artifact_s)
                started = time.perf_counter()
                arena_round(run_config, round_id, stage_of(config, round_id))
                wall_s = time.perf_counter() - started
                stage = stage_of(config, round_id)
                figures = round_figures(round_id, stage, wall_s, step_s, bookkeeping_s, artifact_s)
                figures["progress_artifacts"] = progress_artifacts(round_id)
                rounds.append(figures)
                restore_round()

    for figures in rounds:
        for name in STEPS:
            print(f"round {figures['round_id']} {name:>10}: {figures['step_s'][name]:7.2f} s")
        print(
            f"round {figures['round_id']} ({figures['stage']}): wall {figures['round_wall_s']:.1f} s, "
            f"steps {figures['in_steps_s']:.1f} s, warehouse bookkeeping "
            f"{figures['bookkeeping_s']:.2f} s, Prefect itself {figures['prefect_s']:.2f} s "
            f"({figures['prefect_share']:.1%} of the round: orchestration "
            f"{figures['orchestration_s']:.2f} s, artifact calls "
            f"{figures['artifact_calls_waited_s']:.2f} s)"
        )
        shown = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(figures["progress_artifacts"].items()))
        print(f"round {figures['round_id']} progress artifacts in the UI: {shown}")
    print(
        "Prefect's temporary server start-up and first API call (once per run, not in the "
        f"share): {server_s:.1f} s"
    )
    print(f"prepare (student, pool, eval split): {prepare_s:.1f} s")
    print(
        json.dumps(
            {
                "benchmark": "round",
                "config": args.config,
                "server_startup_s": round(server_s, 1),
                "prepare_s": round(prepare_s, 1),
                "rounds": rounds,
                "prefect_share": rounds[0]["prefect_share"],
            }
        )
    )


def progress_artifacts(round_id: int) -> dict[str, float]:
    """What the Prefect UI shows for the round's progress artifacts: each one's last value."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [f"round-{round_id}-{step}-progress" for step in ("answer", "judge", "train", "eval")]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    return {a.key: float(a.data) for a in artifacts if a.key}


def round_figures(
    round_id: int,
    stage: str,
    wall_s: float,
    step_s: dict[str, float],
    bookkeeping_s: dict[str, float],
    artifact_s: dict[str, float],
) -> dict[str, Any]:
    """Prefect = orchestration (wall outside the step bodies and bookkeeping) + artifact calls
    the steps waited for (taken out of the steps' own time; background ones are not)."""
    artifacts = sum(v for name, v in artifact_s.items() if not name.endswith(BACKGROUND))
    in_steps_s = sum(step_s.values()) - artifacts
    bookkeeping = sum(bookkeeping_s.values())
    prefect_s = wall_s - in_steps_s - bookkeeping
    return {
        "round_id": round_id,
        "stage": stage,
        "round_wall_s": round(wall_s, 2),
        "step_s": {name: round(step_s.get(name, 0.0), 2) for name in STEPS},
        "in_steps_s": round(in_steps_s, 2),
        "artifact_calls_s": {name: round(v, 3) for name, v in artifact_s.items()},
        "artifact_calls_waited_s": round(artifacts, 2),
        "orchestration_s": round(prefect_s - artifacts, 2),
        "bookkeeping_s": round(bookkeeping, 2),
        "prefect_s": round(prefect_s, 2),
        "prefect_share": round(prefect_s / wall_s, 4),
    }


def restore_round() -> None:
    """Undo `instrument_round` (the next round wraps the originals afresh)."""
    from flywheel.flows import round as round_flow

    for step in (
        round_flow.draw_prompts,
        round_flow.answer,
        round_flow.judge,
        round_flow.mine,
        round_flow.train,
        round_flow.evaluate,
        round_flow.promote,
        round_flow.report,
    ):
        step.fn = step.fn.__wrapped__
    for name in BOOKKEEPING:
        setattr(round_flow, name, getattr(round_flow, name).__wrapped__)
    import prefect.artifacts

    for name in ARTIFACT_CALLS:
        original = getattr(prefect.artifacts, name).__wrapped__
        setattr(prefect.artifacts, name, original)
        for module in _modules_calling_artifacts():
            if hasattr(module, name):
                setattr(module, name, original)


if __name__ == "__main__":
    main()
