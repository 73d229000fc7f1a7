"""Prefect's settings as flywheel needs them, applied before Prefect is first used.

Each is a default: a value the user exported wins.
"""

from __future__ import annotations

import os

EPHEMERAL_STARTUP_TIMEOUT_S = "300"  # Prefect waits 20 s; a busy 2-core machine needs more


def quiet_prefect_defaults() -> None:
    """Offline, quiet Prefect whose temporary server may start slowly on a busy machine."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault(
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_TIMEOUT_S
    )
    os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
    os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "500")
