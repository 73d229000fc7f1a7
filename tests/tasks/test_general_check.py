"""tasks/general_check.py: each version measured once per set, stored per round, or skipped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import flywheel.llm.general_check as llm_general_check
from flywheel.config import EvaluationConfig
from flywheel.evaluators.abtest import Decision
from flywheel.evaluators.general_check import GeneralSummary
from flywheel.tasks.general_check import GeneralChecks, check_general, check_version, gate_decision
from flywheel.tasks.report import terminal_table, with_general_checks
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The checkpoints actually measured (the real measurement, counted)."""
    calls: list[str] = []
    real = llm_general_check.measure_general_set

    def counting(checkpoint: str, **kwargs: object) -> llm_general_check.GeneralCheck:
        calls.append(str(checkpoint))
        return real(checkpoint, **kwargs)

    monkeypatch.setattr(llm_general_check, "measure_general_set", counting)
    return calls


def stored_rows(config) -> list[tuple]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(
            "select round_id, version_id, n_items, mean_nll, measured_at from general_checks "
            "order by round_id, version_id"
        ).fetchall()


def test_each_version_is_measured_once_and_stored_per_round(
    tmp_path: Path, tiny_student: Path, measured: list[str]
) -> None:
    config = load_config_in(tmp_path, "smoke", student={"max_new_tokens": 4})
    path = str(tiny_student)
    first = check_general(config, 1, ("r1-sft", path), ("v0", path))
    assert measured == [path, path]
    assert first.candidate is not None and first.candidate.n_items == 63
    assert first.candidate.mean_nll is not None and first.candidate.mean_nll > 0
    again = check_general(config, 1, ("r1-sft", path), ("v0", path))  # a resumed round
    later = check_general(config, 2, ("r2-dpo", path), ("v0", path))  # the champion again
    assert measured == [path, path, path]  # only r2-dpo is new
    assert again == first and later.champion == first.champion
    rows = stored_rows(config)
    assert [(r[0], r[1]) for r in rows] == [(1, "r1-sft"), (1, "v0"), (2, "r2-dpo"), (2, "v0")]
    assert rows[3][2:] == rows[1][2:]  # the champion's figures copied, measured_at included


def test_nothing_is_measured_when_the_check_is_off_or_no_checkpoint_is_local(
    tmp_path: Path, tiny_student: Path, measured: list[str]
) -> None:
    off = load_config_in(tmp_path, "smoke", evaluation={"general_check": False})
    assert check_version(off, 1, "v0", str(tiny_student)) is None
    on = load_config_in(tmp_path, "smoke")
    assert check_version(on, 1, "v0", str(tmp_path / "absent")) is None
    assert check_version(on, 1, "v0", None) is None
    assert measured == []
    assert stored_rows(on) == []


PASSING_AB = Decision(
    promote=True,
    reason=(
        "win rate 0.700 [0.600, 0.800] over 100 prompts; lower bound 0.600 > 0.50 + margin 0.00"
    ),
)
CHAMPION = GeneralSummary(63, 2.0, 0.0)


def test_a_candidate_whose_nll_rises_past_the_limit_is_refused_with_the_reason() -> None:
    checks = GeneralChecks(candidate=GeneralSummary(63, 2.2, 0.0), champion=CHAMPION)
    decision = gate_decision(PASSING_AB, checks, EvaluationConfig(general_max_nll_increase=0.05))
    assert decision == Decision(
        promote=False,
        reason=(
            f"{PASSING_AB.reason}; general set: NLL 2.20 vs champion 2.00 (+10.0%), collapse "
            "0.000; refused on the general set: general-set NLL 2.20 is +10.0% against the "
            "champion's 2.00 (limit +5.0%, evaluation.general_max_nll_increase)"
        ),
    )


def test_a_candidate_within_the_limits_keeps_its_ab_decision_with_the_figures() -> None:
    checks = GeneralChecks(candidate=GeneralSummary(63, 2.08, 0.0), champion=CHAMPION)
    limits = EvaluationConfig(general_max_nll_increase=0.05, general_max_collapse_share=0.05)
    decision = gate_decision(PASSING_AB, checks, limits)
    assert decision.promote is True
    assert decision.reason.endswith(
        "; general set: NLL 2.08 vs champion 2.00 (+4.0%), collapse 0.000"
    )


def test_without_limits_the_figures_are_only_reported() -> None:
    checks = GeneralChecks(candidate=GeneralSummary(63, 9.0, 1.0), champion=CHAMPION)
    decision = gate_decision(PASSING_AB, checks, EvaluationConfig())
    assert decision.promote is True and "collapse 1.000" in decision.reason


def test_a_collapsing_candidate_is_refused_and_a_losing_one_stays_kept() -> None:
    checks = GeneralChecks(candidate=GeneralSummary(63, 2.0, 0.2), champion=CHAMPION)
    limits = EvaluationConfig(general_max_collapse_share=0.05)
    refused = gate_decision(PASSING_AB, checks, limits)
    assert refused.promote is False
    assert refused.reason.endswith(
        "refused on the general set: a share of 0.200 of its general-set replies collapse into "
        "the answer format (limit 0.050, evaluation.general_max_collapse_share)"
    )
    losing = Decision(promote=False, reason="win rate 0.40")
    assert gate_decision(losing, checks, limits).promote is False


def test_an_unmeasured_round_keeps_the_ab_decision_as_it_was() -> None:
    limits = EvaluationConfig(general_max_nll_increase=0.05)
    assert gate_decision(PASSING_AB, None, limits) == PASSING_AB
    unmeasured = GeneralChecks(candidate=None, champion=None)
    decision = gate_decision(PASSING_AB, unmeasured, limits)
    assert decision == Decision(True, f"{PASSING_AB.reason}; general set not measured")


def test_the_round_tables_show_the_candidates_general_figures_after_its_accuracy() -> None:
    rounds = pd.DataFrame(
        {
            "round_id": [1, 2],
            "stage": ["sft", "dpo"],
            "sandbox_accuracy": [0.3, 0.4],
            "wall_s": [9.0, 8.0],
        }
    )
    general = pd.DataFrame(
        {
            "round_id": [2],
            "general_nll": [2.2],
            "general_nll_ratio": [1.1],
            "general_collapse_share": [0.05],
        }
    )
    merged = with_general_checks(rounds, general)
    assert list(merged.columns) == [
        "round_id",
        "stage",
        "sandbox_accuracy",
        "general_nll",
        "general_nll_ratio",
        "general_collapse_share",
        "wall_s",
    ]
    summaries = merged.assign(
        status="done",
        n_battles=10,
        n_sft=1,
        n_dpo=0,
        n_rm=0,
        win_rate=None,
        win_rate_ci_low=None,
        win_rate_ci_high=None,
        promoted=False,
    )
    table = terminal_table(summaries).splitlines()
    assert "gen NLL x champ collapse" in table[0]
    assert table[1].endswith("-       -        -     9 s")  # round 1: not measured
    assert table[2].endswith("2.20    1.10    0.050     8 s")
