"""Step 6b of the round: keeping what it knew. Champion and candidate on the general set.

Where the student has a local checkpoint and `evaluation.general_check` is on, each model is
measured on the held-out general set (llm/general_check.py: mean NLL of the good answers, share
of greedy replies collapsing into the answer format) and one `general_checks` row is stored per
(round, version). A version is measured once per version of the set: the champion measured in
an earlier round, or a model of a resumed round, reuses its stored figures. The promotion
decision applies the `evaluation.general_max_*` limits to them (evaluators/general_check.py),
and `general_max_nll_increase_from_first` against the first champion, the model the earliest
round started from (evaluators/general_first.py): its stored figures, measured when missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flywheel.config import Config, EvaluationConfig
from flywheel.evaluators.abtest import Decision
from flywheel.evaluators.general_check import (
    GeneralSummary,
    general_check_note,
    general_check_refusal,
)
from flywheel.evaluators.general_first import first_champion_note, first_champion_refusal
from flywheel.figures import measure, share
from flywheel.llm.calls import ProgressFn
from flywheel.logs import step_logger
from flywheel.pool.general_set import GeneralSet, load_general_set
from flywheel.warehouse.contracts import NATURAL_KEYS
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query
from flywheel.warehouse.writes import insert_new


@dataclass(frozen=True)
class GeneralChecks:
    """The round's two general checks (None: not measured, e.g. no local checkpoint)."""

    candidate: GeneralSummary | None
    champion: GeneralSummary | None
    first: GeneralSummary | None = None  # the first champion (limit from_first set), or None
    first_version: str | None = None

    @property
    def candidate_nll(self) -> float | None:
        return self.candidate.mean_nll if self.candidate is not None else None

    @property
    def first_nll(self) -> float | None:
        return self.first.mean_nll if self.first is not None else None

    def note(self) -> str:
        note = general_check_note(self.candidate, self.champion)
        if self.candidate is None or self.first_version is None:
            return note
        return (
            f"{note}, {first_champion_note(self.candidate_nll, self.first_nll, self.first_version)}"
        )


def stored_general_check(config: Config, version_id: str, set_sha256: str) -> dict[str, Any] | None:
    """The version's first stored check over this version of the set, or None."""
    params = {"version_id": version_id, "set_sha256": set_sha256}
    with connect_warehouse(config.warehouse) as con:
        cursor = con.execute(read_query("general_check_stored"), params)
        row = cursor.fetchone()
        columns = [d[0] for d in cursor.description]
    return dict(zip(columns, row, strict=True)) if row is not None else None


def measured_row(
    config: Config,
    checkpoint: str,
    general_set: GeneralSet,
    on_progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """The checkpoint measured now on `general_set`, as a row without its round and version;
    `on_progress(done, total)` over its items scored, then answered."""
    from flywheel.llm.general_check import measure_general_set

    student = config.student
    check = measure_general_set(
        checkpoint,
        max_new_tokens=student.max_new_tokens,
        device=student.device,
        generate_batch_size=student.batch_size,
        general_set=general_set,
        on_progress=on_progress,
    )
    return {
        "n_items": check.n_items,
        "mean_nll": check.mean_nll,
        "collapse_share": check.collapse_share,
        "set_sha256": check.set_sha256,
        "wall_s": check.wall_s,
        "measured_at": now_utc(),
    }


def check_version(
    config: Config,
    round_id: int,
    version_id: str,
    checkpoint: str | None,
    on_progress: ProgressFn | None = None,
) -> GeneralSummary | None:
    """The version's general figures for this round (measured, or reused when stored); None
    when the check is off or the version has no local checkpoint. `on_progress`: a measurement's
    (done, total)."""
    from flywheel.llm.checkpoints import is_checkpoint

    if not config.evaluation.general_check or not checkpoint or not is_checkpoint(checkpoint):
        return None
    general_set = load_general_set()
    row = stored_general_check(config, version_id, general_set.sha256)
    if row is None:
        step_logger(__name__).info(
            "round %d: measuring %s on the general set (%s)", round_id, version_id, checkpoint
        )
        row = measured_row(config, checkpoint, general_set, on_progress)
    row = {**row, "round_id": round_id, "version_id": version_id}
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "general_checks", [row], NATURAL_KEYS["general_checks"])
    return GeneralSummary(row["n_items"], row["mean_nll"], row["collapse_share"])


def check_general(
    config: Config,
    round_id: int,
    candidate: tuple[str, str],
    champion: tuple[str, str],
    on_progress: ProgressFn | None = None,
) -> GeneralChecks:
    """Champion and candidate, each (version_id, checkpoint path), on the general set;
    `on_progress(done, total)` follows each one measured (the champion is mostly stored)."""
    candidate_checked = check_version(config, round_id, *candidate, on_progress=on_progress)
    champion_checked = check_version(config, round_id, *champion, on_progress=on_progress)
    first_version, first = first_champion_check(config, round_id, champion, champion_checked)
    checks = GeneralChecks(candidate_checked, champion_checked, first, first_version)
    step_logger(__name__).info(
        "round %d general set (held out, not the sandbox's skills): candidate %s NLL %s, "
        "collapse share %s; champion %s NLL %s%s",
        round_id,
        candidate[0],
        measure(checks.candidate.mean_nll if checks.candidate else None),
        share(checks.candidate.collapse_share if checks.candidate else None),
        champion[0],
        measure(checks.champion.mean_nll if checks.champion else None),
        f"; first champion {first_version} NLL {measure(checks.first_nll)}"
        if first_version
        else "",
    )
    return checks


def first_champion(config: Config) -> tuple[str, str] | None:
    """(version_id, checkpoint path) of the model the earliest round started from, or None."""
    with connect_warehouse(config.warehouse) as con:
        row = con.execute(read_query("general_first_champion")).fetchone()
    return (row[0], row[1]) if row is not None else None


def first_champion_check(
    config: Config,
    round_id: int,
    champion: tuple[str, str],
    champion_checked: GeneralSummary | None,
) -> tuple[str | None, GeneralSummary | None]:
    """The first champion's version and general figures when
    `evaluation.general_max_nll_increase_from_first` is set (stored, or measured now when
    missing; the current champion's own when it is the first); (None, None) otherwise."""
    if config.evaluation.general_max_nll_increase_from_first is None:
        return None, None
    first = first_champion(config)
    if first is None or first[0] == champion[0]:
        return champion[0], champion_checked
    return first[0], check_version(config, round_id, *first)


def general_refusal(checks: GeneralChecks | None, evaluation: EvaluationConfig) -> str | None:
    """Why the candidate is refused on the general set (every `evaluation.general_max_*` limit
    it breaks, by how much), or None."""
    if checks is None:
        return None
    refusals = [
        general_check_refusal(
            checks.candidate,
            checks.champion,
            evaluation.general_max_nll_increase,
            evaluation.general_max_collapse_share,
        ),
        first_champion_refusal(
            checks.candidate_nll,
            checks.first_nll,
            evaluation.general_max_nll_increase_from_first,
            checks.first_version or "-",
        ),
    ]
    refusal = "; ".join(r for r in refusals if r)
    return f"refused on the general set: {refusal}" if refusal else None


def gate_decision(
    decision: Decision, checks: GeneralChecks | None, evaluation: EvaluationConfig
) -> Decision:
    """The A/B decision with the general set's figures in its reason; a candidate that breaks
    an `evaluation.general_max_*` limit is refused, the reason saying which and by how much."""
    if checks is None:
        return decision
    refusal = general_refusal(checks, evaluation)
    reason = f"{decision.reason}; {checks.note()}"
    if refusal is None:
        return Decision(promote=decision.promote, reason=reason)
    return Decision(promote=False, reason=f"{reason}; {refusal}")


def first_champion_columns(checks: GeneralChecks | None) -> dict[str, Any]:
    """The `evaluations` columns of the limit against the first champion (migration 016)."""
    if checks is None or checks.first_version is None:
        return {}
    return {"general_first_champion": checks.first_version, "general_first_nll": checks.first_nll}
