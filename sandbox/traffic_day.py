"""`flywheel sandbox traffic --day N --out DIR`: a simulated day written as logs.

The users talk with a sandbox reference model (`--model NAME`; default the least accurate
one), or with the warehouse's current champion (`--model champion`, answered through
`student.backend` as the round answers: `sandbox.traffic_champion`), so the day's logs and
their feedback are about the model the flywheel trains. The arena's second model is always a
sandbox reference (`--versus`; default the most accurate one). `--flatterers SHARE` sets the
share of the users who are the planted flatterers (0: a clean population).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flywheel.config import Config, SandboxConfig
from flywheel.errors import InputError
from flywheel.sandbox.traffic import Answerer, default_models, sandbox_answerer, simulate_day
from flywheel.sandbox.traffic_formats import TrafficReport, write_day
from flywheel.sandbox.traffic_personas import with_flatterers

CHAMPION = "champion"  # --model champion: the warehouse's current champion answers


def write_traffic_day(
    sandbox: SandboxConfig,
    day: int,
    out_dir: str | Path,
    n_conversations: int = 200,
    n_users: int = 50,
    model: str | None = None,
    versus: str | None = None,
    config: Config | None = None,
    flatterer_share: float | None = None,
) -> TrafficReport:
    """Simulate day `day` (seeded by `sandbox.seed`) and write its logs and truth; `config`
    (the whole configuration) is needed by `model="champion"` only; `flatterer_share`: the
    share of the users who are the planted flatterers (None: the personas' own shares)."""
    personas = with_flatterers(flatterer_share)
    if day < 1 or n_conversations < 1 or n_users < 1:
        raise InputError(
            f"--day {day}, --conversations {n_conversations}, --users {n_users}: each must be "
            "1 or more. Fix: pass positive numbers."
        )
    first, second = default_models(sandbox.models)
    model, versus = model or first, versus or second
    for name in (model, versus):
        if name not in sandbox.models and not (name == model == CHAMPION):
            raise InputError(
                f"sandbox model {name!r} is not in sandbox.models. Fix: pass one of "
                f"{', '.join(sorted(sandbox.models))}"
                + (f", or {CHAMPION} for --model." if name == model else ".")
            )
    answer_b = sandbox_answerer(versus, sandbox.models[versus], sandbox.seed)
    with _answering(sandbox, model, config) as (model_name, answer):
        conversations = simulate_day(
            day, n_conversations, n_users, model_name, answer, sandbox.seed, personas
        )
    return write_day(conversations, day, Path(out_dir), versus, answer_b)


@contextmanager
def _answering(
    sandbox: SandboxConfig, model: str, config: Config | None
) -> Iterator[tuple[str, Answerer]]:
    """(the name logged as the answering model, its answerer) while the day is simulated."""
    if model != CHAMPION:
        yield model, sandbox_answerer(model, sandbox.models[model], sandbox.seed)
        return
    if config is None:
        raise InputError(
            "--model champion needs the warehouse and student settings of a config. Fix: pass "
            "--config with the config whose champion should answer."
        )
    from flywheel.sandbox.traffic_champion import champion_answerer

    with champion_answerer(config) as answering:
        yield answering
