"""One logging rule: inside a Prefect flow or task run, log through its run logger (the lines
reach the run's logs in the UI); outside a run, through the module's standard logger."""

from __future__ import annotations

import logging


def step_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, else the standard logger `name`."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
