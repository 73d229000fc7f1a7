"""Progress of a training run for whoever shows it: `(step, max_steps, loss)` after each step.

The caller sets a callback with `reporting_training_progress(...)` around a training stage;
the stage's trainer (llm/stages/common.py) adds `progress_callbacks()` to its callbacks. The callback
only observes: it never changes what is trained.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from transformers import TrainerCallback

TrainingProgress = Callable[[int, int, float | None], None]
"""Called with the optimizer steps done, the steps planned and the last logged loss."""

_current: ContextVar[TrainingProgress | None] = ContextVar(
    "flywheel_training_progress", default=None
)


@contextlib.contextmanager
def reporting_training_progress(on_progress: TrainingProgress | None) -> Iterator[None]:
    """Training stages run inside this block report their steps to `on_progress`."""
    token = _current.set(on_progress)
    try:
        yield
    finally:
        _current.reset(token)


def progress_callbacks() -> list[TrainerCallback]:
    """The trainer callbacks for the progress reporter in effect (none outside the block)."""
    on_progress = _current.get()
    return [] if on_progress is None else [_StepReporter(on_progress)]


class _StepReporter(TrainerCallback):
    def __init__(self, on_progress: TrainingProgress) -> None:
        self.on_progress = on_progress
        self.last_loss: float | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
        self.on_progress(state.global_step, state.max_steps, self.last_loss)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.on_progress(state.global_step, state.max_steps, self.last_loss)
