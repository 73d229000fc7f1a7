"""Progress for people: plain lines without a terminal (few, periodic, with the end), training
steps and loss from the trainer, and a first line that says what `flywheel run` will do."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from flywheel.config import Config
from flywheel.flows.progress import StepProgress, describe_student, format_duration, run_plan
from flywheel.llm.train_progress import progress_callbacks, reporting_training_progress
from flywheel.sandbox.student import StudentReport


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_long_step_prints_a_few_periodic_lines_and_its_end() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = StepProgress("k", "round 1: answers", stream=out, clock=clock, artifact=False)
    for done in range(0, 1001):
        clock.now = done * 0.01  # 10 s in all: the 10% steps decide
        progress(done, 1000)
    lines = out.getvalue().splitlines()
    assert 9 <= len(lines) <= 11, lines
    assert lines[-1].startswith("round 1: answers: 1000/1000 (100%)")
    assert "ETA" in lines[0] and "ETA" not in lines[-1]


def test_a_slow_step_prints_every_ten_seconds() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = StepProgress("k", "student", stream=out, clock=clock, artifact=False)
    for step in range(0, 51):
        clock.now = step * 2.0  # 100 s for 50 of 600 steps: 10 s passes long before 10% does
        progress(step, 600, loss=2.0 - step / 100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10, lines
    assert lines[0] == "student: 5/600 (1%), loss 1.950, 10 s elapsed, ETA 19 min 50 s"


def test_progress_is_not_repeated_after_the_end() -> None:
    out = io.StringIO()
    progress = StepProgress("k", "judge", stream=out, clock=FakeClock(), artifact=False)
    for _ in range(3):
        progress(5, 5)
    assert len(out.getvalue().splitlines()) == 1


def test_training_reports_steps_and_loss_only_inside_the_block() -> None:
    seen: list[tuple[int, int, float | None]] = []
    assert progress_callbacks() == []
    with reporting_training_progress(lambda *a: seen.append(a)):
        (callback,) = progress_callbacks()

        class State:
            global_step, max_steps = 3, 10

        callback.on_log(None, State, None, logs={"loss": 1.25})
        callback.on_log(None, State, None, logs={"learning_rate": 0.1})
    assert progress_callbacks() == []
    assert seen == [(3, 10, 1.25), (3, 10, 1.25)]


def test_the_first_line_says_rounds_stages_and_whether_the_student_is_built(
    smoke_config: Config,
) -> None:
    line = run_plan(smoke_config, "configs/smoke.yaml", [1, 2], retry_failed=False)
    assert line.startswith("flywheel run: configs/smoke.yaml: rounds 1-2 (sft, dpo)")
    assert line.endswith(
        "; the round-0 student is built first (time unknown: never built here); "
        "round time unknown until the first round"
    )


def test_the_first_line_says_an_existing_student_is_used(tmp_path: Path) -> None:
    from tests.conftest import load_config_in

    config = load_config_in(tmp_path)
    student = Path(config.student.path)
    student.mkdir()
    for name in ("config.json", "model.safetensors"):
        (student / name).write_text("{}")
    line = run_plan(config, "c.yaml", [3], retry_failed=True)
    assert f"round-0 student at {student}" in line and "round 3 (rm+rl)" in line
    assert "retry the failed calls" in line


def test_the_student_line_says_when_the_cache_was_used(tmp_path: Path) -> None:
    report = StudentReport(
        path=tmp_path / "s",
        n_parameters=1_800_000,
        heldout_accuracy=0.21,
        wall_s=0.4,
        built=False,
        from_cache=True,
        cache_path=tmp_path / "cache" / "abc",
    )
    assert "copied from the cache in 0 s" in describe_student(report)
    assert str(tmp_path / "cache" / "abc") in describe_student(report)
    shipped = replace(report, shipped=True)
    assert "copied from the shipped student in 0 s" in describe_student(shipped)
    differs = replace(report, from_cache=False, built=True, differs_from_shipped="weights differ")
    assert describe_student(differs).endswith("cache/abc; weights differ")


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (4.2, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_the_prefect_progress_artifact_is_updated_every_five_seconds_and_at_the_end() -> None:
    class CountingProgress(StepProgress):
        def __init__(self, clock: FakeClock) -> None:
            super().__init__("k", "judge", stream=io.StringIO(), clock=clock, artifact=False)
            self._artifact = True
            self.updates: list[float] = []

        def _send(self, percent: float) -> None:
            self._sender = self._sender or "sender"  # type: ignore[assignment]
            self.updates.append(percent)

    clock = FakeClock()
    progress = CountingProgress(clock)
    for done in range(0, 1001):
        clock.now = done * 0.02  # 20 s in all
        progress(done, 1000)
    progress(1000, 1000)
    assert progress.updates[0] == 0.0 and progress.updates[-1] == 100.0
    assert progress.updates[1:-1] == [25.0, 50.0, 75.0]


def test_a_second_phase_of_a_step_is_shown_too() -> None:
    """rm+rl trains a reward model, then the policy: the count restarts and is shown again."""
    out, clock = io.StringIO(), FakeClock()
    progress = StepProgress("k", "round 3: rm+rl", stream=out, clock=clock, artifact=False)
    for total in (34, 20):
        for step in range(0, total + 1):
            clock.now += 1.0
            progress(step, total, loss=0.5)
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("round 3: rm+rl: 34/34 (100%)") for line in lines) == 1
    assert lines[-1].startswith("round 3: rm+rl: 20/20 (100%)")
    middle = [line for line in lines if "/20 (" in line and "20/20" not in line]
    assert len(middle) >= 4 and "ETA" in middle[0]
