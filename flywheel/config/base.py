"""The base of every config section (unknown keys refused, values frozen), the one-line help
every field carries, and `ConfigError`, the refusal of an invalid configuration."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import InputError


class ConfigError(InputError):
    """An invalid configuration; the message names each bad field, its value and the fix."""


def _help(text: str, **kwargs: Any) -> Any:
    return Field(description=text, **kwargs)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
