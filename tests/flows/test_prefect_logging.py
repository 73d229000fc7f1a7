"""Prefect's logging as flywheel configures it: Prefect's own file but for the console, where a
failed run's cause is one line, shown once; a user's own logging config wins."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import pytest
import yaml

from flywheel.flows.prefect_env import (
    FLYWHEEL_LOGGING_SETTINGS,
    LOGGING_SETTINGS_ENV,
    use_flywheel_logging,
)
from flywheel.logs import OneLineFailureFormatter, RepeatedFailureFilter

PREFECT_FORMAT = "%(levelname)s | %(name)s - %(message)s"


def error_record(name: str, error: BaseException, message: str = "failed: %r") -> logging.LogRecord:
    """An ERROR record of logger `name` carrying `error`, as a run logger would make it."""
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, message, (error,), exc_info)
    record.task_run_name = record.flow_run_name = "train-1"
    return record


def test_flywheels_logging_file_differs_from_prefects_only_in_the_console() -> None:
    import prefect.logging

    prefects = yaml.safe_load((Path(prefect.logging.__file__).parent / "logging.yml").read_text())
    ours = yaml.safe_load(FLYWHEEL_LOGGING_SETTINGS.read_text())
    assert ours["handlers"]["console"].pop("filters") == ["repeated_failure"]
    assert ours["handlers"]["console"]["formatter"] == "one_line_failure"
    ours["handlers"]["console"]["formatter"] = "standard"
    ours.pop("filters")
    one_line = ours["formatters"].pop("one_line_failure")
    standard = dict(prefects["formatters"]["standard"])
    assert one_line.pop("()") == "flywheel.logs.OneLineFailureFormatter"
    assert standard.pop("()") == "prefect.logging.formatters.PrefectFormatter"
    assert one_line == standard
    assert ours == prefects


def test_a_run_errors_console_line_keeps_the_message_without_the_traceback() -> None:
    formatter = OneLineFailureFormatter(format=PREFECT_FORMAT)
    record = error_record("prefect.task_runs", OSError(28, "No space left on device"))
    line = formatter.format(record)
    assert line == "ERROR | prefect.task_runs - failed: OSError(28, 'No space left on device')"
    assert record.exc_info is not None, "the record itself keeps the traceback for the UI"
    assert "Traceback" in logging.Formatter().format(record)


def test_an_error_outside_task_and_flow_runs_keeps_its_traceback_on_the_console() -> None:
    formatter = OneLineFailureFormatter(format=PREFECT_FORMAT)
    line = formatter.format(error_record("flywheel.tasks.train", ValueError("bad row")))
    assert line.startswith(
        "ERROR | flywheel.tasks.train - failed: ValueError('bad row')\nTraceback"
    )


def test_an_exception_re_raised_by_each_enclosing_flow_passes_the_console_once() -> None:
    full_disk, other = OSError(28, "No space left on device"), RuntimeError("judge down")
    records = [
        error_record("prefect.task_runs", full_disk),
        logging.LogRecord(
            "prefect.task_runs",
            logging.ERROR,
            __file__,
            1,
            "Finished in state Failed('x')",
            (),
            None,
        ),
        error_record("prefect.flow_runs", full_disk),
        error_record("prefect.flow_runs", full_disk),
        error_record("prefect.flow_runs", other),
        logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, "Finished", (), None),
    ]
    repeated = RepeatedFailureFilter()
    passed = [record for record in records if repeated.filter(record)]
    assert passed == [records[0], records[4], records[5]]


def test_the_files_console_shows_a_failure_re_raised_by_two_flows_as_one_line() -> None:
    from logging.config import DictConfigurator

    from prefect.logging.configuration import load_logging_config
    from prefect.logging.handlers import PrefectConsoleHandler

    config = load_logging_config(FLYWHEEL_LOGGING_SETTINGS)
    configurator = DictConfigurator(config)
    console_config = config["handlers"]["console"]
    stream = io.StringIO()
    console = PrefectConsoleHandler(stream=stream)
    console.setFormatter(
        configurator.configure_formatter(config["formatters"][console_config["formatter"]])
    )
    for name in console_config["filters"]:
        console.addFilter(configurator.configure_filter(config["filters"][name]))
    full_disk = OSError(28, "No space left on device")
    for logger_name in ("prefect.task_runs", "prefect.flow_runs", "prefect.flow_runs"):
        console.handle(error_record(logger_name, full_disk))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], lines


def test_a_users_logging_settings_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv(LOGGING_SETTINGS_ENV, raising=False)
    use_flywheel_logging()
    assert Path(os.environ[LOGGING_SETTINGS_ENV]) == FLYWHEEL_LOGGING_SETTINGS

    monkeypatch.setenv(LOGGING_SETTINGS_ENV, str(tmp_path / "mine.yml"))
    use_flywheel_logging()
    assert os.environ[LOGGING_SETTINGS_ENV] == str(tmp_path / "mine.yml")

    monkeypatch.delenv(LOGGING_SETTINGS_ENV)
    (tmp_path / "logging.yml").write_text("version: 1\n")
    use_flywheel_logging()
    assert LOGGING_SETTINGS_ENV not in os.environ
