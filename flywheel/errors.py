"""Errors the `flywheel` command maps to exit statuses (README: "Exit statuses")."""

from __future__ import annotations


class InputError(ValueError):
    """Bad configuration or input, refused before anything is stored: exit status 2.

    The message names what is wrong and how to fix it, in one or two lines.
    """
