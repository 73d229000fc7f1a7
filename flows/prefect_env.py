"""Prefect's settings as flywheel needs them, applied before Prefect is first used.

Each is a default: a value the user exported wins.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

EPHEMERAL_STARTUP_TIMEOUT_S = "300"  # Prefect waits 20 s; a busy 2-core machine needs more
CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
QUIET_CONSOLE_LEVEL = "WARNING"
LOGGING_SETTINGS_ENV = "PREFECT_LOGGING_SETTINGS_PATH"
FLYWHEEL_LOGGING_SETTINGS = Path(__file__).with_name("prefect_logging.yml")


def quiet_prefect_defaults() -> None:
    """Offline, quiet Prefect whose temporary server may start slowly on a busy machine.

    Only the terminal is quiet (Prefect's console handler at WARNING, here and in the
    subprocesses of served runs); every INFO line still reaches the run's logs in the UI.
    A failed stage's cause reaches the terminal on one line, once (`use_flywheel_logging`).
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault(CONSOLE_LEVEL_ENV, QUIET_CONSOLE_LEVEL)
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S
    )
    os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
    os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "500")
    use_flywheel_logging()
    quiet_console_handlers(os.environ[CONSOLE_LEVEL_ENV])


def use_flywheel_logging() -> None:
    """Prefect's logging config with a console that shows a failed run's cause on one line,
    once (flows/prefect_logging.yml), unless the user has one of their own: an exported
    PREFECT_LOGGING_SETTINGS_PATH, or a logging.yml in PREFECT_HOME (Prefect's default path)."""
    prefect_home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    if LOGGING_SETTINGS_ENV in os.environ or (prefect_home / "logging.yml").exists():
        return
    os.environ[LOGGING_SETTINGS_ENV] = str(FLYWHEEL_LOGGING_SETTINGS)


def quiet_console_handlers(level: str) -> None:
    """Prefect configures logging when it is imported: lower its console handlers here too."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.setLevel(level)
