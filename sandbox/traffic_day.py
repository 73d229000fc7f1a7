"""`flywheel sandbox traffic --day N --out DIR`: a simulated day written as logs."""

from __future__ import annotations

from pathlib import Path

from flywheel.config import SandboxConfig
from flywheel.errors import InputError
from flywheel.sandbox.traffic import default_models, sandbox_answerer, simulate_day
from flywheel.sandbox.traffic_formats import TrafficReport, write_day


def write_traffic_day(
    sandbox: SandboxConfig,
    day: int,
    out_dir: str | Path,
    n_conversations: int = 200,
    n_users: int = 50,
    model: str | None = None,
    versus: str | None = None,
) -> TrafficReport:
    """Simulate day `day` (seeded by `sandbox.seed`) and write its logs and truth."""
    if day < 1 or n_conversations < 1 or n_users < 1:
        raise InputError(
            f"--day {day}, --conversations {n_conversations}, --users {n_users}: each must be "
            "1 or more. Fix: pass positive numbers."
        )
    first, second = default_models(sandbox.models)
    model, versus = model or first, versus or second
    for name in (model, versus):
        if name not in sandbox.models:
            raise InputError(
                f"sandbox model {name!r} is not in sandbox.models. Fix: pass one of "
                f"{', '.join(sorted(sandbox.models))}."
            )
    answer = sandbox_answerer(model, sandbox.models[model], sandbox.seed)
    answer_b = sandbox_answerer(versus, sandbox.models[versus], sandbox.seed)
    conversations = simulate_day(day, n_conversations, n_users, model, answer, sandbox.seed)
    return write_day(conversations, day, Path(out_dir), versus, answer_b)
