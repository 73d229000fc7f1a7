"""The round report's objective guard: the summary bullet, the decision word and the ratio to
the first champion, from literal evaluation rows."""

from __future__ import annotations

import pandas as pd

from flywheel.tasks.report_data import decision_word, objective_line, ratio_to_first

REFUSED = pd.Series(
    {
        "objective_outcome": "refused",
        "objective_source": "sandbox_checkers",
        "objective_n_items": 200,
        "objective_accuracy_candidate": 0.3,
        "objective_accuracy_candidate_ci_low": 0.2361,
        "objective_accuracy_candidate_ci_high": 0.365,
        "objective_accuracy_champion": 0.42,
        "objective_accuracy_champion_ci_low": 0.35,
        "objective_accuracy_champion_ci_high": 0.49,
        "objective_max_drop": 0.05,
    }
)


def test_the_summary_bullet_gives_outcome_set_both_accuracies_and_the_limit() -> None:
    assert objective_line(REFUSED) == (
        "- objective guard: refused (the sandbox's checkers, 200 items): accuracy candidate "
        "0.300 [0.236, 0.365] vs champion 0.420 [0.350, 0.490]; limit 0.050 below"
    )


def test_a_guard_reported_only_or_unable_to_apply_says_so_and_an_off_one_says_nothing() -> None:
    reported = REFUSED.copy()
    reported["objective_outcome"], reported["objective_max_drop"] = "reported", None
    reported["objective_source"] = "objective_set"
    assert objective_line(reported).endswith("; reported only")
    assert "(evaluation.objective_set, 200 items)" in objective_line(reported)
    cannot = pd.Series({"objective_outcome": "cannot_apply"})
    assert objective_line(cannot) == (
        "- objective guard: cannot apply (no objective set could be measured)"
    )
    assert objective_line(pd.Series({"objective_outcome": "off"})) is None
    assert objective_line(pd.Series({"objective_outcome": None})) is None
    assert objective_line(pd.Series({"win_rate": 0.6})) is None  # a row from before the guard


def test_a_round_the_guard_refused_reads_kept_objective_refused() -> None:
    row = pd.Series(
        {"status": "done", "promoted": False, "win_rate": 0.7, "objective_outcome": "refused"}
    )
    assert decision_word(row) == "kept (objective refused)"
    assert decision_word(row.drop("objective_outcome")) == "kept"
    assert decision_word(pd.Series({**row, "objective_outcome": "passed"})) == "kept"


def test_the_ratio_to_the_first_champion_is_empty_where_a_figure_is_missing() -> None:
    rounds = pd.DataFrame({"general_nll": [2.12, None, 2.0], "general_first_nll": [2.0, 2.0, None]})
    ratios = ratio_to_first(rounds).tolist()
    assert abs(ratios[0] - 1.06) < 1e-12 and pd.isna(ratios[1]) and pd.isna(ratios[2])


def test_the_approval_form_says_what_the_objective_guard_decided() -> None:
    import dataclasses

    from flywheel.evaluators.objective import objective_verdict
    from flywheel.tasks.promote import approval_summary
    from tests.flows.test_round_decision_message import EVALUATION

    off = approval_summary(2, "r2-dpo", "r1-sft", EVALUATION)
    assert "Objective guard: off (evaluation.objective_max_drop is null" in off
    cannot = dataclasses.replace(
        EVALUATION, objective_verdict=objective_verdict(None, 0.05, "no objective set")
    )
    assert (
        "Objective guard: cannot apply: no objective set (evaluation.objective_max_drop 0.050 "
        "not checked)."
    ) in approval_summary(2, "r2-dpo", "r1-sft", cannot)
    verdict = objective_verdict(None, None)
    assert "Objective guard: off" in approval_summary(
        2, "r2-dpo", "r1-sft", dataclasses.replace(EVALUATION, objective_verdict=verdict)
    )
