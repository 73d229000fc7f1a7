"""Progress of a long step, shown twice: a Prefect progress artifact and a terminal bar."""

from __future__ import annotations

import sys
import threading
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from tqdm import tqdm

ARTIFACT_STEP_PERCENT = 5.0  # update the artifact at most every 5 points, keeping the API quiet


class StepProgress:
    """`on_progress(done, total)` callback for the answer and judge steps (thread-safe)."""

    def __init__(self, key: str, description: str, show_bar: bool = True) -> None:
        self.key = key
        self.description = description
        self.show_bar = show_bar and sys.stderr.isatty()
        self._bar: tqdm | None = None
        self._artifact_id: UUID | None = None
        self._last_percent = -ARTIFACT_STEP_PERCENT
        self._lock = threading.Lock()

    def __call__(self, n_done: int, n_total: int) -> None:
        percent = 100.0 * n_done / n_total if n_total else 100.0
        with self._lock:
            self._update_bar(n_done, n_total)
            if percent - self._last_percent >= ARTIFACT_STEP_PERCENT or percent >= 100.0:
                self._update_artifact(percent)
                self._last_percent = percent

    def _update_bar(self, n_done: int, n_total: int) -> None:
        if not self.show_bar:
            return
        if self._bar is None:
            self._bar = tqdm(total=n_total, desc=self.description, leave=False, file=sys.stderr)
        self._bar.total = n_total
        self._bar.n = n_done
        self._bar.refresh()

    def _update_artifact(self, percent: float) -> None:
        if self._artifact_id is None:
            self._artifact_id = create_progress_artifact(
                progress=percent, key=self.key, description=self.description
            )
        else:
            update_progress_artifact(self._artifact_id, percent, description=self.description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
