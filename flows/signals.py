"""Ctrl-C and SIGTERM stop a run within seconds, with the cause the round records.

The first SIGINT or SIGTERM starts what must not wait for the unwinding on a thread of its
own (`on_first_signal`: the running round is marked interrupted in the warehouse), then raises
`Interrupted` in the main thread, so every step unwinds through its own cleanup (rows committed,
servers stopped). That unwinding passes through Prefect's engine, which reports each crashed
task and flow run to the API; after the signal such a call is tried once instead of up to six
times with backoff (a slow or stopped server held the round's mark back for minutes).
If the cleanup takes longer than the grace (`GRACE_S`, or `$FLYWHEEL_STOP_GRACE_S` seconds:
raise it where the service manager waits longer before its SIGKILL), or a second signal comes,
the process exits at once with the same status: finished work and the round's mark are in the
warehouse either way, and a rerun resumes.
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
from collections.abc import Callable, Iterator
from types import FrameType

from flywheel.errors import root_causes

GRACE_S = 30.0
GRACE_ENV = "FLYWHEEL_STOP_GRACE_S"
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FirstSignalAction = Callable[[int], None]  # called with the signal number

_first_signal_actions: list[FirstSignalAction] = []  # registered by on_first_signal


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
    means "stopped by a signal", else None. An error raised while a signal unwound the run
    (Prefect's crash report to a server that is gone, say) means the signal too."""
    from prefect.exceptions import TerminationSignal

    for cause in root_causes(error):
        for handled in _handling_chain(cause):
            if isinstance(handled, Interrupted):
                return handled.signum
            if isinstance(handled, TerminationSignal):
                return handled.signal
            if isinstance(handled, KeyboardInterrupt):
                return signal.SIGINT
    return None


def _handling_chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then the exception being handled when it was raised, and so on."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__context__


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
def on_first_signal(action: FirstSignalAction) -> Iterator[None]:
    """Within the block, the first signal calls `action(signum)` on a thread of its own, at
    once, while the main thread unwinds: for what must not wait for that unwinding (through
    Prefect's engine and its API calls)."""
    _first_signal_actions.append(action)
    try:
        yield
    finally:
        _first_signal_actions.remove(action)


def _start_first_signal_actions(signum: int) -> None:
    for action in list(_first_signal_actions):
        thread = threading.Thread(
            target=_run_action, args=(action, signum), name="flywheel-stop", daemon=True
        )
        thread.start()


def _run_action(action: FirstSignalAction, signum: int) -> None:
    try:
        action(signum)
    except Exception as e:  # the unwinding tries again; the run's outcome is its own
        print(f"flywheel: while stopping: {e}", file=sys.stderr, flush=True)


def _report_to_prefect_without_retries() -> None:
    """Prefect's client retries a failed API call up to 5 times with backoff (each attempt
    up to its request timeout); after a signal a crashed run's report is tried once."""
    with contextlib.suppress(Exception):  # no Prefect settings in use: nothing to shorten
        from prefect.settings import get_current_settings

        get_current_settings().client.max_retries = 0


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
        _start_first_signal_actions(signum)
        _report_to_prefect_without_retries()
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
