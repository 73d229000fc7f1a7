"""Errors the `flywheel` command maps to exit statuses (README: "Exit statuses")."""

from __future__ import annotations


class InputError(ValueError):
    """Bad configuration or input, refused before anything is stored: exit status 2.

    The message names what is wrong and how to fix it, in one or two lines.
    """


def root_causes(error: BaseException) -> list[BaseException]:
    """The leaves of an exception group (task groups wrap what really failed), else [error]."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in root_causes(inner)]
    return [error]


def describe_failure(error: BaseException) -> str:
    """`Type: message` of each root cause, `; `-joined, for a terminal line or a warehouse row."""
    return "; ".join(f"{type(e).__name__}: {e}" for e in root_causes(error))
