"""Ctrl-C and SIGTERM stop a run within seconds, with the cause the round records.

The first SIGINT or SIGTERM raises `Interrupted` in the main thread, so every step unwinds
through its own cleanup (rows committed, servers stopped, the round marked interrupted). If
that takes longer than the grace (`GRACE_S`, or `$FLYWHEEL_STOP_GRACE_S` seconds: raise it
where the service manager waits longer before its SIGKILL, or on a machine so busy that the
cleanup is slow), or a second signal comes, the process exits at once with the same status:
finished work is in the warehouse either way, and a rerun resumes.
Prefect's flow engine installs its own SIGTERM bridge while a flow runs; within the block that
bridge is our handler too (its TerminationSignal is still read as "interrupted" where it comes
from elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from flywheel.errors import root_causes

GRACE_S = 30.0
GRACE_ENV = "FLYWHEEL_STOP_GRACE_S"
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `exit_status` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def interrupt_signal(error: BaseException) -> int | None:
    """The signal number behind `error` (or inside it, when a task group wrapped it) when it
    means "stopped by a signal", else None."""
    from prefect.exceptions import TerminationSignal

    for cause in root_causes(error):
        if isinstance(cause, Interrupted):
            return cause.signum
        if isinstance(cause, TerminationSignal):
            return cause.signal
        if isinstance(cause, KeyboardInterrupt):
            return signal.SIGINT
    return None


def grace_s() -> float:
    """Seconds the cleanup may take after the first signal: $FLYWHEEL_STOP_GRACE_S or GRACE_S."""
    text = os.environ.get(GRACE_ENV, "").strip()
    try:
        return float(text) if text else GRACE_S
    except ValueError:
        print(
            f"flywheel: {GRACE_ENV}={text!r} is not a number of seconds; using {GRACE_S:.0f}",
            file=sys.stderr,
        )
        return GRACE_S


def _exit_later(status: int, last_words: str) -> None:
    """Exit with `status` after the grace unless the process has exited by then (child
    servers started with PR_SET_PDEATHSIG stop with it)."""
    seconds = grace_s()

    def stop() -> None:
        print(
            f"flywheel: still stopping after {seconds:.0f} s; exiting. {last_words}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(status)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def interrupt_on_signals(last_words: str) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM raise `Interrupted`; a second one exits at once.

    `last_words` (how to resume) is printed when the process cannot wait any longer.
    """
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        if received:  # a second signal: stop now
            print(f"flywheel: exiting. {last_words}", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        received.append(signum)
        print(
            f"\nflywheel: {signal.Signals(signum).name} received; stopping (again to force)",
            file=sys.stderr,
            flush=True,
        )
        _exit_later(128 + signum, last_words)
        raise Interrupted(signum)

    import prefect.utilities.engine as prefect_engine

    # Prefect's flow engine swaps in its SIGTERM bridge, which raises TerminationSignal; raised
    # inside an asyncio socket callback, asyncio swallows it as a transport error and the run
    # went on to exit 0. Ours raises Interrupted (a KeyboardInterrupt), which asyncio re-raises.
    prefect_bridge = prefect_engine._prefect_sigterm_handler
    prefect_engine._prefect_sigterm_handler = handle
    previous = {signum: signal.signal(signum, handle) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        prefect_engine._prefect_sigterm_handler = prefect_bridge
        for signum, handler in previous.items():
            signal.signal(signum, handler)
