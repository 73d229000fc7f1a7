"""The checks of config values that pydantic cannot make alone (cron, time zone, URL), and how a
refusal reads: each bad field with its value and its fix, one line each."""

from __future__ import annotations

import importlib.util
import json
import zoneinfo
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_core import PydanticCustomError


def field_problem(
    problem: str, fix: str, field: str | None = None, value: Any = None
) -> PydanticCustomError:
    """A validation error with its own fix, shown by `describe_validation_error` as
    `field = value: problem. Fix: fix`. A model-level check names the `field` (relative to
    the model) and its `value`; a field validator leaves both out."""
    context: dict[str, Any] = {"problem": problem, "fix": fix}
    if field is not None:
        context |= {"field": field, "value": value}
    return PydanticCustomError("flywheel_check", "{problem}", context)


SANDBOX_URL = "sandbox"  # an endpoint with this base_url is served by the embedded sandbox


@cache
def _vendored_croniter() -> ModuleType:
    """Prefect's vendored croniter, the parser `flywheel serve` schedules with. It is loaded
    from its file: importing `prefect._vendor.croniter` runs Prefect's package init (~1 s),
    which every command would pay for a config check."""
    prefect_spec = importlib.util.find_spec("prefect")
    origin = Path(prefect_spec.origin) if prefect_spec and prefect_spec.origin else None
    source = origin.parent / "_vendor" / "croniter" / "croniter.py" if origin else None
    if source is None or not source.is_file():
        from prefect._vendor.croniter import croniter as module  # layout changed: pay the init

        return module
    spec = importlib.util.spec_from_file_location("flywheel._prefect_croniter", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cron_problem(cron: str) -> str | None:
    """Why Prefect would refuse `cron` as a schedule (its rule: croniter parses it, and no
    random or hashed fields), or None when it is valid."""
    if not _vendored_croniter().croniter.is_valid(cron):
        return "not a valid cron expression"
    if any(part.casefold() in ("r", "h") for part in cron.split()):
        return "random (R) and hashed (H) cron fields are not supported by Prefect"
    return None


@cache
def iana_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def url_problem(base_url: str) -> str | None:
    """Why `base_url` is neither `sandbox` nor an http(s) URL with a host, or None."""
    if base_url == SANDBOX_URL:
        return None
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f"not a valid URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "neither `sandbox` nor an http:// or https:// URL"
    if not parts.hostname:
        return "the URL has no host"
    return None


def catalog_problem(catalog: str | None) -> str | None:
    """Why `catalog` is no DuckLake catalog flywheel can open, or None (also for no catalog)."""
    if catalog is None:
        return None
    kind, _, rest = catalog.partition(":")
    if kind not in ("sqlite", "postgres") or not rest.strip():
        return "neither `sqlite:<file>` nor `postgres:<connection string>`"
    if kind == "postgres" and "password=" in rest.replace(" ", ""):
        return "holds a password; the config is stored and logged, so it must not"
    return None


def _field_help(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The help line of the field at `loc`, walking nested sections."""
    current: Any = model
    info = None
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        annotation = info.annotation
        current = _section_type(annotation)
    return info.description if info else None


def _section_type(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):  # list[X], X | None, dict[str, X]
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            break
        current = _section_type(fields[part].annotation)
    return sorted(getattr(current, "model_fields", {}) or [])


def describe_validation_error(error: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line per problem: `field = value: problem. Fix: ...`."""
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        loc = tuple(item["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        value = item.get("input")
        shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{...}"
        context = item.get("ctx") or {}
        if item["type"] == "flywheel_check":
            if "field" in context:
                field = ".".join([str(p) for p in loc] + [context["field"]])
                shown = json.dumps(context["value"], default=str)
            lines.append(f"  {field} = {shown}: {context['problem']}. Fix: {context['fix']}.")
            continue
        if item["type"] == "extra_forbidden":
            keys = ", ".join(_valid_keys(model, loc[:-1]))
            lines.append(
                f"  {field}: unknown key. Fix: remove it or correct its spelling; valid keys here: {keys}"
            )
            continue
        if item["type"] == "missing":
            help_text = _field_help(model, loc) or "see configs/demo.yaml"
            lines.append(f"  {field}: required but missing. Fix: add it ({help_text}).")
            continue
        help_text = _field_help(model, loc) or "see configs/demo.yaml for a valid example"
        lines.append(
            f"  {field} = {shown}: {item['msg']}. Fix: set {field} to a value that satisfies "
            f"this ({help_text})."
        )
    return "\n".join(lines)
