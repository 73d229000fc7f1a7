"""Progress of the long steps, for people: terminal bars or plain lines, and Prefect artifacts.

On a terminal each long step (the student build, a round's answers, judging, training and A/B
eval) gets a tqdm bar on stderr that vanishes when the step ends. When stderr is not a terminal
(a log file, CI, `nohup`), the step prints a plain line at most every `LINE_INTERVAL_S` seconds
or `LINE_INTERVAL_SHARE` of the work, plus one when it ends, so a log shows progress without
flooding. Inside a Prefect run, a progress artifact is updated every `ARTIFACT_STEP_PERCENT`
points and `ARTIFACT_INTERVAL_S` seconds (and when it ends), by a background thread: a step
never waits on Prefect's API (each update is an HTTP call, 30-130 ms on a busy machine). Nothing
here goes through Prefect's loggers: the run's logs keep one line per result.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from tqdm import tqdm

from flywheel.config import Config

ARTIFACT_STEP_PERCENT = 5.0  # update the artifact at most every 5 points ...
ARTIFACT_INTERVAL_S = 5.0  # ... and 5 s
ARTIFACT_CLOSE_TIMEOUT_S = 5.0  # the last update waits at most this long for a slow API
LINE_INTERVAL_S = 10.0  # without a terminal: a line at most every 10 s ...
LINE_INTERVAL_SHARE = 0.10  # ... or every 10% of the work, whichever comes first


class StepProgress:
    """`on_progress(done, total, loss=None)` callback of one long step (thread-safe).

    `loss` (training steps) is shown beside the count. `artifact` adds a Prefect progress
    artifact under `key` when called inside a Prefect run.
    """

    def __init__(
        self,
        key: str,
        description: str,
        show_bar: bool = True,
        artifact: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "",
    ) -> None:
        self.key = key
        self.description = description
        self.stream = stream if stream is not None else sys.stderr
        self.show_bar = show_bar and _is_terminal(self.stream)
        self.unit = unit
        self._clock = clock
        self._artifact = artifact and _in_prefect_run()
        self._bar: tqdm | None = None
        self._sender: _ArtifactSender | None = None
        self._last_percent = -ARTIFACT_STEP_PERCENT
        self._last_artifact_time = -ARTIFACT_INTERVAL_S
        self._started: float | None = None
        self._first_done = 0
        self._last_line: tuple[float, float] | None = None  # (time, share) of the last plain line
        self._finished = False
        self._last_count: tuple[int, int] | None = None  # (done, total) of the last call
        self._lock = threading.Lock()

    def __call__(self, n_done: int, n_total: int, loss: float | None = None) -> None:
        percent = 100.0 * n_done / n_total if n_total else 100.0
        with self._lock:
            now = self._clock()
            if self._last_count is not None and (
                n_total != self._last_count[1] or n_done < self._last_count[0]
            ):
                self._restart()  # a new phase (rm+rl: the reward model, then the policy)
            self._last_count = (n_done, n_total)
            if self._started is None:
                self._started, self._first_done = now, n_done
            if self.show_bar:
                self._update_bar(n_done, n_total, loss)
            else:
                self._maybe_print_line(now, n_done, n_total, loss)
            if self._artifact and self._artifact_due(now, percent):
                self._send(percent)
                self._last_percent, self._last_artifact_time = percent, now

    def _restart(self) -> None:
        self._started, self._last_line, self._finished = None, None, False
        self._last_percent, self._last_artifact_time = -ARTIFACT_STEP_PERCENT, -ARTIFACT_INTERVAL_S

    def _artifact_due(self, now: float, percent: float) -> bool:
        if self._sender is None or (percent >= 100.0 and self._last_percent < 100.0):
            return True
        return (
            percent - self._last_percent >= ARTIFACT_STEP_PERCENT
            and now - self._last_artifact_time >= ARTIFACT_INTERVAL_S
        )

    def _update_bar(self, n_done: int, n_total: int, loss: float | None) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=n_total,
                desc=self.description,
                leave=False,
                file=self.stream,
                unit=self.unit or "it",
                initial=n_done,
            )
        self._bar.total = n_total
        self._bar.n = n_done
        if loss is not None:
            self._bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)
        self._bar.refresh()

    def _maybe_print_line(self, now: float, n_done: int, n_total: int, loss: float | None) -> None:
        share = n_done / n_total if n_total else 1.0
        if self._finished:
            return
        done = share >= 1.0
        if self._last_line is not None and not done:
            last_time, last_share = self._last_line
            if now - last_time < LINE_INTERVAL_S and share - last_share < LINE_INTERVAL_SHARE:
                return
        elif self._last_line is None and not done and n_done == self._first_done:
            self._last_line = (now, share)  # the starting point: nothing done yet to report
            return
        self._last_line = (now, share)
        self._finished = done
        self.stream.write(self._line(now, n_done, n_total, loss) + "\n")
        self.stream.flush()

    def _line(self, now: float, n_done: int, n_total: int, loss: float | None) -> str:
        elapsed = now - (self._started if self._started is not None else now)
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.description}: {n_done}/{n_total}{unit}"]
        if n_total:
            parts[0] += f" ({100.0 * n_done / n_total:.0f}%)"
        if loss is not None:
            parts.append(f"loss {loss:.3f}")
        parts.append(f"{format_duration(elapsed)} elapsed")
        rate_done = n_done - self._first_done
        if 0 < n_done < n_total and rate_done > 0 and elapsed > 0:
            parts.append(f"ETA {format_duration(elapsed / rate_done * (n_total - n_done))}")
        return ", ".join(parts)

    def _send(self, percent: float) -> None:
        """Create the artifact here (in the step's Prefect context), update it in the background."""
        if self._sender is None:
            self._sender = _ArtifactSender(self.key, self.description, percent)
        else:
            self._sender.submit(percent)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._sender is not None:
            self._sender.close()


class _ArtifactSender:
    """A Prefect progress artifact whose updates a daemon thread sends, latest value only."""

    def __init__(self, key: str, description: str, percent: float) -> None:
        from prefect.artifacts import create_progress_artifact

        self.description = description
        self.artifact_id: UUID = create_progress_artifact(
            progress=percent, key=key, description=description
        )
        self._pending: float | None = None
        self._closed = False
        self._wake = threading.Condition()
        context = contextvars.copy_context()  # Prefect's settings and client live in it
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"progress-{key}", daemon=True
        )
        self._thread.start()

    def submit(self, percent: float) -> None:
        with self._wake:
            self._pending = percent
            self._wake.notify()

    def close(self) -> None:
        """Send the last value (waiting at most ARTIFACT_CLOSE_TIMEOUT_S), then stop."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(ARTIFACT_CLOSE_TIMEOUT_S)

    def _run(self) -> None:
        from prefect.artifacts import update_progress_artifact

        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                percent, self._pending = self._pending, None
                closed = self._closed
            if percent is not None:
                try:
                    update_progress_artifact(
                        self.artifact_id, percent, description=self.description
                    )
                except Exception as e:  # progress is cosmetic: the step goes on
                    logging.getLogger(__name__).warning("progress artifact not updated: %s", e)
                    return
            if closed:
                return


def describe_student(report: Any) -> str:
    """One line on the round-0 student (a `sandbox.student.StudentReport`): where it came from."""
    size = f"{report.n_parameters / 1e6:.2f}M parameters"
    accuracy = f"accuracy {report.heldout_accuracy:.1%} on the build's own held-out tasks"
    if report.shipped:
        how = (
            f"copied from the shipped student in {format_duration(report.wall_s)} "
            f"({report.cache_path}; accuracy measured when built)"
        )
    elif report.from_cache:
        how = (
            f"copied from the cache in {format_duration(report.wall_s)} "
            f"({report.cache_path}, the same recipe's build; accuracy measured when built)"
        )
    elif report.built:
        kept = f"; kept in the cache at {report.cache_path}" if report.cache_path else ""
        differs = f"; {report.differs_from_shipped}" if report.differs_from_shipped else ""
        how = f"built in {format_duration(report.wall_s)}{kept}{differs}"
    else:
        how = "existing checkpoint reused"
    return f"round-0 student at {report.path}: {size}, {accuracy}, {how}"


def note(text: str, stream: TextIO | None = None) -> None:
    """One line for the person at the terminal (stderr), outside Prefect's logs."""
    out = stream if stream is not None else sys.stderr
    out.write(f"flywheel: {text}\n")
    out.flush()


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_plan(config: Config, config_path: str, round_ids: list[int], retry_failed: bool) -> str:
    """The first line of `flywheel run`: what it will do and how long that takes, as measured
    (flows/estimate.py: this warehouse's earlier rounds, the last run's time outside its
    rounds, the student's last build), or "unknown" where nothing was measured yet."""
    from flywheel.flows.estimate import (
        describe_rounds,
        estimate_rounds,
        measured_rounds,
        outside_rounds_s,
        planned_rounds_of,
    )

    student, student_s = _student_plan(config)
    planned = planned_rounds_of(config, round_ids)
    if planned:
        stages = ", ".join(round_plan.stage for round_plan in planned)
        span = f"{round_ids[0]}" if len(round_ids) == 1 else f"{round_ids[0]}-{round_ids[-1]}"
        rounds = (
            f"round{'s' if len(round_ids) > 1 else ''} {span} ({stages}), "
            f"{config.prompts.slice_size} prompts each"
        )
    else:
        rounds = "no new round"
    if retry_failed:
        rounds = f"retry the failed calls of finished rounds, then {rounds}"
    accumulate = config.training.mining.accumulate
    estimate = estimate_rounds(planned, measured_rounds(config.warehouse), accumulate)
    outside_s = outside_rounds_s(config) if estimate.known_stages else None
    extra_s = None if student_s is None or outside_s is None else student_s + outside_s
    return f"flywheel run: {config_path}: {rounds}; {student}; " + describe_rounds(
        estimate, len(planned), extra_s
    )


def _student_plan(config: Config) -> tuple[str, float | None]:
    """How the round-0 student is obtained and how long that took when last measured (0: a
    copy or nothing to do, None: never measured here)."""
    from flywheel.llm.checkpoints import is_checkpoint
    from flywheel.llm.gguf import base_checkpoint_dir

    path = Path(config.student.path)
    if is_checkpoint(path):
        return f"round-0 student at {path}", 0.0
    if path.suffix.lower() == ".gguf":
        if is_checkpoint(base_checkpoint_dir(path, config.training.output_dir)):
            return f"round-0 student from {path}, converted before", 0.0
        return f"round-0 student from {path}, converted once (time unknown)", None
    if not config.student.build_if_missing:
        return f"no round-0 student at {path} (the run will stop)", 0.0
    from flywheel.flows.estimate import earlier_build_s
    from flywheel.sandbox.student import cached_student

    entry = cached_student(config)
    if entry is not None:
        where = "the shipped student" if entry.shipped else f"the cache ({entry.path})"
        return f"round-0 student copied from {where}", 0.0
    build_s = earlier_build_s(config)
    if build_s is None:
        return "the round-0 student is built first (time unknown: never built here)", None
    return f"the round-0 student is built first (about {format_duration(build_s)})", build_s
