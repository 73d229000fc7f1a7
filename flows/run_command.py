"""`flywheel run` in a terminal: the flow under our own temporary Prefect server, stopped
cleanly by Ctrl-C or SIGTERM, with one exit status and one or two lines per outcome.

Exit statuses: 0 every round done, 1 a round failed (its cause printed), 2 bad configuration
or input, 130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM.
"""

from __future__ import annotations

import signal
import sys

from flywheel.config import Config
from flywheel.errors import InputError, describe_failure, root_causes
from flywheel.flows.retry import rounds_with_failed_calls
from flywheel.flows.signals import interrupt_on_signals, interrupt_signal
from flywheel.flows.temporary_server import temporary_prefect_server
from flywheel.tasks.report import round_summaries, terminal_table

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def resume_command(config_path: str, rounds: int | None) -> str:
    more = f" --rounds {rounds}" if rounds is not None else ""
    return f"flywheel run --config {config_path}{more}"


def nothing_to_do(config: Config, rounds: int | None, retry_failed: bool) -> bool:
    from flywheel.flows.flywheel_flow import planned_rounds

    if retry_failed and rounds_with_failed_calls(config):
        return False
    return not planned_rounds(config, rounds, one_more=False)


def first_line(config: Config, config_path: str, rounds: int | None, retry_failed: bool) -> str:
    """What this run will do and roughly how long it takes."""
    from flywheel.flows.flywheel_flow import planned_rounds
    from flywheel.flows.progress import run_plan

    return run_plan(config, config_path, planned_rounds(config, rounds, False), retry_failed)


def run_flywheel_cli(
    config: Config, config_path: str, rounds: int | None, retry_failed: bool = False
) -> int:
    """The rounds, then the per-round table; see the module doc for the exit statuses."""
    if not nothing_to_do(config, rounds, retry_failed):
        print(first_line(config, config_path, rounds, retry_failed), flush=True)
        status = _run(config, config_path, rounds, retry_failed)
    else:
        target = rounds if rounds is not None else config.schedule.rounds
        print(
            f"the warehouse already holds {target} finished rounds; nothing to do "
            f"(ask for more with --rounds {target + 1}, or retry failed calls with "
            "--retry-failed)"
        )
        status = EXIT_OK
    if status != EXIT_INPUT:
        print(terminal_table(round_summaries(config)))
    return status


def _run(config: Config, config_path: str, rounds: int | None, retry_failed: bool) -> int:
    from flywheel.flows.flywheel_flow import flywheel

    resume = resume_command(config_path, rounds)
    try:
        with interrupt_on_signals(f"Resume with: {resume}"), temporary_prefect_server():
            flywheel(config_path, rounds, retry_failed=retry_failed)
    except BaseException as e:
        signum = interrupt_signal(e)
        if signum is not None:
            print(
                f"flywheel: interrupted ({signal.Signals(signum).name}); finished "
                f"work is in the warehouse. Resume with: {resume}",
                file=sys.stderr,
            )
            return 128 + signum
        if not isinstance(e, Exception):
            raise
        causes = root_causes(e)
        if all(isinstance(cause, InputError) for cause in causes):
            print(f"flywheel: {'; '.join(str(c) for c in causes)}", file=sys.stderr)
            return EXIT_INPUT
        print(
            f"flywheel: the run failed: {describe_failure(e)}\n"
            f"Finished work is kept in the warehouse; fix the cause, then resume with: {resume}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
