"""One progress callback for a step whose work runs in parts (each model that answers, each
judge of a panel): every part reports its own (done, total), and the step's callback gets the
sums."""

from __future__ import annotations

import threading

from flywheel.llm.calls import ProgressFn


class ProgressSum:
    """Adds the (done, total) of several parts into one callback; safe across threads."""

    def __init__(self, on_progress: ProgressFn | None, totals: dict[str, int]) -> None:
        self.on_progress = on_progress
        self.done = dict.fromkeys(totals, 0)
        self.total = dict(totals)
        self._lock = threading.Lock()

    def part(self, name: str) -> ProgressFn:
        """The callback of part `name`: its (done, total) replaces what it reported before."""

        def update(n_done: int, n_total: int) -> None:
            with self._lock:
                self.done[name], self.total[name] = n_done, n_total
                done, total = sum(self.done.values()), sum(self.total.values())
            if self.on_progress is not None:
                self.on_progress(done, total)

        return update
