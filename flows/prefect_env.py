"""Prefect's settings as flywheel needs them, applied before Prefect is first used.

Each is a default: a value the user exported wins.
"""

from __future__ import annotations

import logging
import os

EPHEMERAL_STARTUP_TIMEOUT_S = "300"  # Prefect waits 20 s; a busy 2-core machine needs more
CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
QUIET_CONSOLE_LEVEL = "WARNING"


def quiet_prefect_defaults() -> None:
    """Offline, quiet Prefect whose temporary server may start slowly on a busy machine.

    Only the terminal is quiet (Prefect's console handler at WARNING, here and in the
    subprocesses of served runs); every INFO line still reaches the run's logs in the UI.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault(CONSOLE_LEVEL_ENV, QUIET_CONSOLE_LEVEL)
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S
    )
    os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
    os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "500")
    quiet_console_handlers(os.environ[CONSOLE_LEVEL_ENV])


def quiet_console_handlers(level: str) -> None:
    """Prefect configures logging when it is imported: lower its console handlers here too."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(level)
