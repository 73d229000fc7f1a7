"""How long `flywheel run` takes, from what was measured here, or "unknown" (its first line).

A round's wall time has three parts, each stored when the round ran: training
(`training_runs.wall_s`), the general check (`general_checks.wall_s`, measured in that round),
and the rest (answers, judging, mining, the A/B eval: `rounds.wall_s` less the other two). A
planned round is estimated from the latest finished round of the same stage kind in this
warehouse (a warehouse holds one round-0 student's lineage, so the student's size is the same):
the rest scales with the prompts drawn (less the champion's eval answers it generated: a later
round reuses them), training with the prompts too and, when mining accumulates
(`training.mining.accumulate`), with how many rounds of that kind it trains on; the general
check is one version's (the champion's figures are stored: a later round checks its candidate). A stage kind that never finished a round here is unknown,
and said so: no rate is guessed.

Outside the rounds: the last run on this Prefect home (its span, kept by
flows/temporary_server.py) less its rounds' wall time is Prefect's start and the preparation,
when those rounds were this warehouse's; a student build is timed by an earlier build of the
same recipe in the student cache (its manifest's `build_wall_s`), and one made during that last
run is taken out of its time outside the rounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from flywheel.config import Config
from flywheel.flows.progress import format_duration
from flywheel.warehouse.store import WarehouseSettings, connect_warehouse, read_query


@dataclass(frozen=True)
class MeasuredRound:
    """One finished round as this warehouse measured it (seconds)."""

    round_id: int
    stage: str
    stage_ordinal: int  # the how-many-th round of its stage kind
    n_prompts: int  # prompts drawn into its slice
    wall_s: float
    train_s: float
    general_s: float
    n_general: int  # versions whose general check was measured in the round
    n_student_answers: int  # answers the model versions generated in the round
    n_champion_eval_answers: int  # of them, the champion's on the eval prompts


@dataclass(frozen=True)
class PlannedRound:
    round_id: int
    stage: str
    stage_ordinal: int
    n_prompts: int


@dataclass(frozen=True)
class RoundsEstimate:
    """Seconds of the planned rounds whose stage kind was measured here, which rounds it comes
    from, and the stage kinds nothing was measured for."""

    known_s: float
    known_stages: tuple[str, ...]
    from_rounds: tuple[int, ...]
    unknown_stages: tuple[str, ...]


def measured_rounds(warehouse: WarehouseSettings) -> list[MeasuredRound]:
    """Every finished round of the warehouse with its measured times, in order."""
    with connect_warehouse(warehouse, read_only=True) as con:
        rows = con.execute(read_query("estimate_round_times")).fetchall()
    return [MeasuredRound(*row) for row in rows]


def planned_rounds_of(config: Config, round_ids: list[int]) -> list[PlannedRound]:
    """The planned rounds with their stage, stage ordinal and prompt count from the config."""
    from flywheel.flows.flywheel_flow import stage_of

    planned = []
    for round_id in round_ids:
        stage = stage_of(config, round_id)
        ordinal = sum(stage_of(config, i) == stage for i in range(1, round_id + 1))
        planned.append(PlannedRound(round_id, stage, ordinal, config.prompts.slice_size))
    return planned


def round_seconds(planned: PlannedRound, measured: MeasuredRound, accumulate: bool) -> float:
    """`planned` estimated from a finished round of the same stage kind. A later round checks
    only its candidate on the general set and generates only the candidate's eval answers (the
    champion's are stored): the measured round's share of champion work is left out."""
    prompt_ratio = planned.n_prompts / measured.n_prompts if measured.n_prompts else 1.0
    rest_s = max(0.0, measured.wall_s - measured.train_s - measured.general_s)
    if measured.n_student_answers:
        rest_s *= 1.0 - measured.n_champion_eval_answers / measured.n_student_answers
    train_s = measured.train_s * prompt_ratio
    if accumulate:
        train_s *= planned.stage_ordinal / max(1, measured.stage_ordinal)
    general_s = measured.general_s / measured.n_general if measured.n_general else 0.0
    return rest_s * prompt_ratio + train_s + general_s


def estimate_rounds(
    planned: list[PlannedRound], history: list[MeasuredRound], accumulate: bool
) -> RoundsEstimate:
    """Each planned round from the latest finished round of its stage kind, if there is one."""
    latest = {measured.stage: measured for measured in history}  # history is in round order
    known_s, known, unknown, sources = 0.0, [], [], set()
    for round_plan in planned:
        measured = latest.get(round_plan.stage)
        if measured is None:
            unknown += [round_plan.stage] if round_plan.stage not in unknown else []
            continue
        known_s += round_seconds(round_plan, measured, accumulate)
        known += [round_plan.stage] if round_plan.stage not in known else []
        sources.add(measured.round_id)
    return RoundsEstimate(known_s, tuple(known), tuple(sorted(sources)), tuple(unknown))


def describe_rounds(estimate: RoundsEstimate, n_planned: int, extra_s: float | None) -> str:
    """The estimate in words for the first line. `extra_s`: the measured time outside the
    rounds (the student's build, Prefect's start), added to the total; None when part of it
    is unknown (then only the rounds are timed)."""
    if n_planned == 0:
        return "no round to run"
    if not estimate.known_stages:
        return "round time unknown until the first round"
    plural = "s" if len(estimate.from_rounds) > 1 else ""
    rounds = ", ".join(str(r) for r in estimate.from_rounds)
    source = f"from round{plural} {rounds} of this warehouse"
    if estimate.unknown_stages:
        known, unknown = ", ".join(estimate.known_stages), ", ".join(estimate.unknown_stages)
        return (
            f"about {format_duration(estimate.known_s)} for the {known} rounds ({source}), "
            f"{unknown} unknown until its first round"
        )
    if extra_s is None:
        return f"about {format_duration(estimate.known_s)} for the rounds ({source})"
    return f"about {format_duration(estimate.known_s + extra_s)} in all ({source})"


def outside_rounds_s(config: Config) -> float | None:
    """How long the last run on this Prefect home spent outside its rounds (Prefect's start,
    the preparation, the steps between rounds), when its rounds were this warehouse's; less
    a student build made during it. None when no such run was recorded."""
    from flywheel.flows.temporary_server import last_run_span

    span = last_run_span()
    if span is None:
        return None
    with connect_warehouse(config.warehouse, read_only=True) as con:
        n_rounds, rounds_s = con.execute(read_query("estimate_rounds_between"), span).fetchone()
    if not n_rounds:
        return None
    started_at, ended_at = span
    built_s = sum(
        wall_s
        for created_at, wall_s in student_builds(config)
        if started_at <= created_at <= ended_at
    )
    return max(0.0, (ended_at - started_at).total_seconds() - rounds_s - built_s)


def earlier_build_s(config: Config) -> float | None:
    """The build time of the latest build in the student cache made with the same recipe
    settings and device (its code or libraries may differ), or None."""
    builds = student_builds(config)
    return max(builds)[1] if builds else None


def student_builds(config: Config) -> list[tuple[datetime, float]]:
    """(when, seconds) of each build in the student cache made with this config's recipe."""
    from flywheel.sandbox.student import StudentRecipe, student_recipe_fields
    from flywheel.sandbox.student_cache import MANIFEST_NAME, students_dir

    if not config.student.cache:
        return []
    fields = student_recipe_fields(config, StudentRecipe())
    wanted = json.loads(json.dumps(fields, sort_keys=True, default=str))
    builds: list[tuple[datetime, float]] = []
    for manifest_path in students_dir(config.student.cache_dir).glob(f"*/{MANIFEST_NAME}"):
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest["built_from"]["recipe"] == wanted:
                created_at = datetime.strptime(manifest["created_at"], "%Y-%m-%dT%H:%M:%SZ")
                builds.append((created_at, float(manifest["build_wall_s"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return builds
