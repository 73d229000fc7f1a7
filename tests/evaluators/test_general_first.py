"""evaluators/general_first.py: the general-set limit against the first champion."""

from __future__ import annotations

from flywheel.evaluators.general_first import first_champion_note, first_champion_refusal


def test_a_candidate_past_the_limit_against_the_first_champion_is_refused_with_figures() -> None:
    refusal = first_champion_refusal(2.15, 2.0, 0.05, "v0")
    assert refusal == (
        "general-set NLL 2.15 is +7.5% against the first champion v0's 2.00 (limit +5.0%, "
        "evaluation.general_max_nll_increase_from_first)"
    )


def test_a_candidate_at_or_under_the_limit_passes() -> None:
    assert first_champion_refusal(2.1, 2.0, 0.05, "v0") is None  # exactly +5%
    assert first_champion_refusal(1.9, 2.0, 0.0, "v0") is None  # better than the first


def test_no_limit_or_a_missing_figure_is_never_a_refusal() -> None:
    assert first_champion_refusal(9.0, 2.0, None, "v0") is None
    assert first_champion_refusal(None, 2.0, 0.05, "v0") is None
    assert first_champion_refusal(2.2, None, 0.05, "v0") is None


def test_the_note_gives_the_first_champions_figure_and_the_change() -> None:
    assert first_champion_note(2.122, 2.0, "v0") == "vs first champion v0 2.00 (+6.1%)"
    assert first_champion_note(2.1, None, "v0") == "vs first champion v0 -"
