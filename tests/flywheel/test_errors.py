"""Root causes come out of the exception groups that task groups wrap them in."""

from __future__ import annotations

from flywheel.errors import InputError, describe_failure, root_causes


def test_root_causes_unwrap_nested_exception_groups() -> None:
    missing_key = InputError("environment variable OPENAI_API_KEY is not set")
    timeout = TimeoutError("judge")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [missing_key]), timeout])
    assert root_causes(nested) == [missing_key, timeout]
    assert root_causes(missing_key) == [missing_key]


def test_describe_failure_names_each_cause_and_not_the_group() -> None:
    group = ExceptionGroup("unhandled errors in a TaskGroup", [OSError("disk full")])
    assert describe_failure(group) == "OSError: disk full"
