"""One logging rule: inside a Prefect flow or task run, log through its run logger (the lines
reach the run's logs in the UI); outside a run, through the module's standard logger.

And the terminal's share of Prefect's logging (flows/prefect_logging.yml names these): a failed
run's cause on one line, once, instead of a traceback from the task and each enclosing flow.
"""

from __future__ import annotations

import copy
import logging
from typing import Any


def step_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, else the standard logger `name`."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)


RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")  # Prefect's task- and flow-run records
FAILED_STATE_PREFIX = "Finished in state Failed"  # the task engine's last line of a failed run
SHOWN_MARK = "_flywheel_shown_on_console"


class OneLineFailureFormatter(logging.Formatter):
    """Prefect's console format (its `PrefectFormatter`, built with the same arguments) without
    the traceback of a task or flow run's error: the terminal gets the exception's one line; the
    run's logs in the UI keep the traceback (that handler formats the record itself, and the
    record is copied here, never changed).

    Prefect is imported when the formatter is built, not with this module: Prefect's logging
    set-up imports this module while `prefect` itself is still being imported.
    """

    def __init__(self, **prefect_formatter_kwargs: Any) -> None:
        from prefect.logging.formatters import PrefectFormatter

        super().__init__()
        self._prefect_formatter = PrefectFormatter(**prefect_formatter_kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if record.name in RUN_LOGGERS and (record.exc_info or record.exc_text):
            record = copy.copy(record)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return self._prefect_formatter.format(record)


class RepeatedFailureFilter(logging.Filter):
    """Drops, from the console, what repeats a failure already shown there: the same
    exception logged again by each flow run that re-raises it, and a failed task run's
    `Finished in state Failed(...)` line after its exception line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in RUN_LOGGERS or record.levelno < logging.ERROR:
            return True
        if str(record.msg).startswith(FAILED_STATE_PREFIX):
            return False
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if getattr(error, SHOWN_MARK, False):
            return False
        try:
            setattr(error, SHOWN_MARK, True)  # on the exception: nothing here keeps it alive
        except AttributeError:  # an exception class without attributes: shown each time
            pass
        return True
