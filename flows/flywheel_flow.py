"""The flywheel: N rounds following the stage schedule, or one more round (nightly).

A round that stopped half-way (crash, kill, power loss) is resumed first, from what the
warehouse already holds.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from flywheel.config import Config, load_config, resolve_sandbox_endpoints
from flywheel.errors import describe_failure
from flywheel.flows.progress import StepProgress, describe_student, note
from flywheel.flows.retry import failed_calls_of_round, retry_round_calls, rounds_with_failed_calls
from flywheel.flows.round import RoundResult, arena_round
from flywheel.flows.run_lock import hold_run_lock
from flywheel.flows.sandbox_pool import fill_sandbox_pool
from flywheel.flows.signals import interrupt_signal, on_first_signal
from flywheel.flows.stale_runs import mark_stale_runs_crashed
from flywheel.llm.checkpoints import is_checkpoint
from flywheel.llm.gguf import converted_base, is_gguf
from flywheel.llm.stages.outputs import remove_staging_dirs
from flywheel.logs import step_logger
from flywheel.pool.eval_set import ensure_eval_split
from flywheel.preflight import check_before_run
from flywheel.tasks.night_report import publish_night_summary
from flywheel.tasks.report import publish_round_summary
from flywheel.warehouse.backup import backup_before_round
from flywheel.warehouse.lifecycle import mark_round_unfinished, register_base_model, round_statuses


def stage_of(config: Config, round_id: int) -> str:
    stages = config.schedule.stages
    return stages[(round_id - 1) % len(stages)]


def planned_rounds(config: Config, target_rounds: int | None, one_more: bool) -> list[int]:
    """Round ids to run: an unfinished round first, then new ones up to the target total."""
    rows = round_statuses(config.warehouse)
    unfinished = [rid for rid, status in rows if status != "done"]
    last_id = rows[-1][0] if rows else 0
    if one_more:
        return unfinished[:1] or [last_id + 1]
    target = target_rounds if target_rounds is not None else config.schedule.rounds
    return unfinished + list(range(last_id + 1, target + 1))


@task(name="prepare", cache_policy=NO_CACHE)
def prepare(config: Config, n_slices: int | None = None) -> None:
    """Round-0 student, its registration as champion, the sandbox's pool (topped up for the next
    `n_slices` slices, default schedule.rounds) and the eval split."""
    student_path = Path(config.student.path)
    if is_gguf(student_path):  # converted once; its manifest keeps the source and sha256
        student_path = converted_base(student_path, config.training.output_dir, announce=note)
    if not is_checkpoint(student_path):
        if not config.student.build_if_missing:
            raise RuntimeError(
                f"student.path {student_path} holds no checkpoint. Fix: point student.path at a "
                "Hugging Face checkpoint directory, or set student.build_if_missing: true to "
                "build the sandbox's tiny student."
            )
        from flywheel.sandbox.student import build_student

        log = step_logger(__name__)
        log.info("round-0 student at %s: from the cache or built", student_path)
        progress = StepProgress("student-build-progress", "round-0 student: training", unit="step")
        try:
            built = build_student(config, on_progress=progress)
        finally:
            progress.close()
        log.info(describe_student(built))
        note(describe_student(built))
    register_base_model(config.warehouse, str(student_path))
    if config.prompts.sandbox_pool_size:
        fill_sandbox_pool(config, n_slices)
    ensure_eval_split(config)
    if config.prompts.sandbox_pool_size:  # drawing the eval split marks look-alikes contaminated
        fill_sandbox_pool(config, n_slices)


@contextlib.contextmanager
def arena(config: Config) -> Iterator[Config]:
    """The run's config while the sandbox server runs, every endpoint that uses it resolved to
    its live URL (the config as it is when no endpoint uses the sandbox)."""
    if not config.uses_sandbox:
        yield config
        return
    from flywheel.sandbox.server import start_sandbox

    with start_sandbox(config.sandbox) as server:
        yield resolve_sandbox_endpoints(config, server.base_url)


@flow(name="flywheel", flow_run_name="flywheel", log_prints=False)
def flywheel(
    config_path: str, rounds: int | None = None, one_more: bool = False, retry_failed: bool = False
) -> State:
    """Run rounds until `rounds` are complete (default schedule.rounds), or one more round.

    Ends Completed with the night's headline as its message (`rounds 1-3: 1 promoted, champion
    r2-dpo`) after the `flywheel-night` artifact and its closing log line; calling it returns
    the list of `RoundResult`s.

    With `retry_failed`, the failed calls of finished rounds are retried first (and what they
    unblock is mined). One run at a time per warehouse: a second one is refused.
    """
    config = load_config(config_path)
    check_before_run(config)
    with hold_run_lock(config.warehouse) as alone:
        if alone:  # no other run works on this warehouse: what a run left half-done is stale
            mark_stale_runs_crashed(config)
            remove_staging_dirs(config)
        prepare(config, None if one_more else rounds)  # `--rounds 6` draws six slices
        results: list[RoundResult] = []
        with arena(config) as run_config:
            if retry_failed:
                retry_finished_rounds(run_config)
            round_ids = planned_rounds(run_config, rounds, one_more)
            try:
                for round_id in round_ids:
                    back_up_before(run_config, round_id)
                    results.append(run_round(run_config, round_id))
            except Exception as e:
                if interrupt_signal(e) is None:  # a stopping run reports nothing more
                    close_the_night(run_config, round_ids)
                raise
            headline = close_the_night(run_config, round_ids)
    return Completed(message=headline, data=results)


def back_up_before(config: Config, round_id: int) -> None:
    """`warehouse.backup_before_round`: a verified backup before the round (the run lock is
    held); a damaged warehouse stops the run here (exit 2)."""
    warehouse = config.warehouse
    report = backup_before_round(
        warehouse.path,
        warehouse.backup_before_round,
        round_id,
        warehouse.backup_dir,
        warehouse.lock_timeout_s,
    )
    if report is not None:
        step_logger(__name__).info(report.summary())


def close_the_night(config: Config, round_ids: list[int]) -> str | None:
    """The parent run's last word: the `flywheel-night` artifact and one log line saying what
    the rounds did; returns the run's state message (None, and only a warning logged, when
    the report fails, so that the run's own outcome stands)."""
    log = step_logger(__name__)
    try:
        night = publish_night_summary(config, round_ids)
    except Exception as e:
        log.warning("no night summary published: %s", describe_failure(e))
        return None
    log.info(night.line)
    return night.headline


def run_round(config: Config, round_id: int) -> RoundResult:
    """One round; a round that raised or was interrupted is recorded as such, and re-raised.

    A signal marks the round interrupted at once, from a thread of its own: the mark does not
    wait for the unwinding through Prefect's engine, whose crash reports go to the API."""
    mark = InterruptMark(config, round_id)
    with on_first_signal(mark.write):
        try:
            return arena_round(config, round_id, stage_of(config, round_id))
        except BaseException as e:
            signum = interrupt_signal(e)
            if signum is not None:
                mark.write(signum)  # unless the signal's own thread has written it
                raise
            mark_round_unfinished(
                config.warehouse,
                round_id,
                status="failed",
                cause=describe_failure(e),
                attempt_wall_s=mark.elapsed_s(),
            )
            publish_failed_round_summary(config, round_id)
            raise


class InterruptMark:
    """A round's `interrupted` mark in the warehouse, written once: by whichever comes first
    of the signal's own thread and the unwinding (which writes it where that thread failed)."""

    def __init__(self, config: Config, round_id: int) -> None:
        self.config = config
        self.round_id = round_id
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._written = False

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def write(self, signum: int) -> None:
        with self._lock:
            if self._written:
                return
            mark_round_unfinished(
                self.config.warehouse,
                self.round_id,
                status="interrupted",
                cause=f"interrupted by {signal.Signals(signum).name}",
                attempt_wall_s=self.elapsed_s(),
            )
            self._written = True


def publish_failed_round_summary(config: Config, round_id: int) -> None:
    """The failure in the round's summary artifact; a report that fails too is only logged,
    so that the round's own cause is what the run shows."""
    try:
        publish_round_summary(config, round_id)
    except Exception as e:
        step_logger(__name__).warning("round %d: no summary published: %s", round_id, e)


def retry_finished_rounds(config: Config) -> None:
    """Finished rounds whose train calls ended in errors: answer and judge again, re-mine."""
    log = step_logger(__name__)
    for round_id, before in rounds_with_failed_calls(config).items():
        retry_round_calls(config, round_id)
        after = failed_calls_of_round(config, round_id)
        log.info(
            "round %d: retried %d unanswered prompts, %d error battles and %d SFT battles "
            "without a refined target; %d, %d and %d remain",
            round_id,
            before.n_unanswered,
            before.n_error_battles,
            before.n_sft_without_target,
            after.n_unanswered,
            after.n_error_battles,
            after.n_sft_without_target,
        )
