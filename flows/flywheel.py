"""The flywheel: N rounds following the stage schedule, or one more round (nightly).

A round that stopped half-way (crash, kill, power loss) is resumed first, from what the
warehouse already holds.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.prefect_env import quiet_prefect_defaults
from flows.report import round_summaries, terminal_table
from flows.round import RoundResult, arena_round, fail_round
from flows.sandbox_pool import fill_sandbox_pool
from flywheel.config import Config, load_config
from tasks.endpoints import step_logger
from tasks.promote import register_base_model
from tasks.prompts import ensure_eval_split
from warehouse.store import connect_warehouse


def stage_of(config: Config, round_id: int) -> str:
    stages = config.schedule.stages
    return stages[(round_id - 1) % len(stages)]


def planned_rounds(config: Config, target_rounds: int | None, one_more: bool) -> list[int]:
    """Round ids to run: an unfinished round first, then new ones up to the target total."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute("select round_id, status from rounds order by round_id").fetchall()
    unfinished = [rid for rid, status in rows if status != "done"]
    last_id = rows[-1][0] if rows else 0
    if one_more:
        return unfinished[:1] or [last_id + 1]
    target = target_rounds if target_rounds is not None else config.schedule.rounds
    return unfinished + list(range(last_id + 1, target + 1))


@task(name="prepare", cache_policy=NO_CACHE)
def prepare(config: Config) -> None:
    """Round-0 student, its registration as champion, the sandbox's pool and the eval split."""
    student_path = Path(config.student.path)
    if not (student_path / "config.json").exists():
        if not config.student.build_if_missing:
            raise RuntimeError(
                f"student.path {student_path} holds no checkpoint. Fix: point student.path at a "
                "Hugging Face checkpoint directory, or set student.build_if_missing: true to "
                "build the sandbox's tiny student."
            )
        from sandbox.student import build_student

        log = step_logger(__name__)
        log.info("building the round-0 student at %s (about 6 minutes on 2 cores)", student_path)
        built = build_student(config)
        log.info(
            "built the round-0 student: held-out accuracy %.1f%%", 100 * built.heldout_accuracy
        )
    register_base_model(config, str(student_path))
    if config.prompts.sandbox_pool_size:
        fill_sandbox_pool(config)
    ensure_eval_split(config)


@contextlib.contextmanager
def arena(config: Config) -> Iterator[str | None]:
    """The sandbox server's URL while it runs, when any endpoint uses it; else None."""
    if not config.uses_sandbox:
        yield None
        return
    from sandbox.server import start_sandbox

    with start_sandbox(config.sandbox) as server:
        yield server.base_url


@flow(name="flywheel", flow_run_name="flywheel", log_prints=False)
def flywheel(
    config_path: str, rounds: int | None = None, one_more: bool = False
) -> list[RoundResult]:
    """Run rounds until `rounds` are complete (default schedule.rounds), or one more round."""
    config = load_config(config_path)
    prepare(config)
    results: list[RoundResult] = []
    with arena(config) as sandbox_url:
        for round_id in planned_rounds(config, rounds, one_more):
            started = time.monotonic()
            try:
                results.append(
                    arena_round(config, round_id, stage_of(config, round_id), sandbox_url)
                )
            except Exception as e:
                fail_round(config, round_id, f"{type(e).__name__}: {e}", time.monotonic() - started)
                raise
    return results


def run_flywheel_cli(config: Config, config_path: str, rounds: int | None) -> int:
    """`flywheel run`: the rounds, then the per-round table. Exit status 0 on success."""
    quiet_prefect_defaults()
    target = rounds if rounds is not None else config.schedule.rounds
    if not planned_rounds(config, rounds, one_more=False):
        print(
            f"the warehouse already holds {target} finished rounds; nothing to do "
            f"(ask for more with --rounds {target + 1})"
        )
    else:
        try:
            flywheel(config_path, rounds)
        except Exception as e:
            print(
                f"flywheel: the run failed: {type(e).__name__}: {e}\n"
                "Finished work is kept in the warehouse; fix the cause and run the same "
                "command again to resume.",
                file=sys.stderr,
            )
            return 1
    print(terminal_table(round_summaries(config)))
    return 0
