"""Properties of the A/B statistics, the promotion gate and the judge audit."""

import numpy as np
import pytest

from flywheel.evaluators.abtest import (
    ABResult,
    JudgedGame,
    decide_promotion,
    judge_audit,
    length_controlled_win_rate,
    prompts_to_confirm,
    score_ab_test,
)


def ab_result(wins: int, ties: int, losses: int) -> ABResult:
    """An A/B result with equal answer lengths."""
    outcomes = ["win"] * wins + ["tie"] * ties + ["loss"] * losses
    return score_ab_test(outcomes, [100.0] * len(outcomes), [100.0] * len(outcomes))


def test_gate_refuses_52_percent_on_100_prompts():
    result = ab_result(52, 0, 48)
    decision = decide_promotion(result, margin=0.0)
    assert result.win_rate == pytest.approx(0.52)
    assert not decision.promote
    assert "over 100 prompts" in decision.reason and "<= 0.50 + margin 0.00" in decision.reason


def test_a_kept_lead_says_about_how_many_prompts_would_confirm_it():
    small = ab_result(18, 69, 11)  # a real model's SFT candidate: +7 wins on 98 prompts
    decision = decide_promotion(small, margin=0.0)
    needed = prompts_to_confirm(small, 0.5)
    assert not decision.promote and needed is not None and needed > small.n
    assert decision.reason.endswith(
        f"would need about {needed} prompts to be confirmed (prompts.eval_size)"
    )
    # the same shares on that many prompts are confirmed (the estimate is not far short)
    scale = needed / small.n * 1.2
    larger = ab_result(round(18 * scale), round(69 * scale), round(11 * scale))
    assert decide_promotion(larger, margin=0.0).promote
    # no lead, nothing to confirm; a promoted candidate says nothing of it
    assert prompts_to_confirm(ab_result(10, 80, 10), 0.5) is None
    assert "would need" not in decide_promotion(ab_result(280, 0, 120)).reason


def test_gate_accepts_70_percent_on_400_prompts():
    result = ab_result(280, 0, 120)
    decision = decide_promotion(result, margin=0.0)
    assert decision.promote
    assert decision.reason == (
        f"win rate 0.700 [{result.ci_low:.3f}, {result.ci_high:.3f}] over 400 prompts; "
        f"lower bound {result.ci_low:.3f} > 0.50 + margin 0.00"
    )
    assert 0.64 < result.ci_low < 0.70 < result.ci_high < 0.76


def test_gate_margin_raises_the_bar():
    result = ab_result(280, 0, 120)
    assert not decide_promotion(result, margin=0.2).promote
    with pytest.raises(ValueError, match="margin"):
        decide_promotion(result, margin=0.5)


def test_ties_and_inconsistent_count_half_and_unparsed_or_error_are_excluded():
    outcomes = ["win", "win", "tie", "inconsistent", "loss", "unparsed", "error"]
    result = score_ab_test(outcomes, [10, 20, 30, 40, 50, 1000, 1000], [10] * 7)
    assert (result.n, result.wins, result.ties, result.losses) == (5, 2, 2, 1)
    assert (result.n_inconsistent, result.n_excluded) == (1, 2)
    assert result.win_rate == pytest.approx(3.0 / 5.0)
    assert result.mean_len_candidate == pytest.approx(30.0)  # excluded prompts left out
    assert result.mean_len_champion == pytest.approx(10.0)


def test_bootstrap_interval_is_seeded_and_brackets_the_win_rate():
    first, again = ab_result(60, 10, 30), ab_result(60, 10, 30)
    assert first == again
    assert first.ci_low < first.win_rate < first.ci_high


def test_bad_ab_input_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown outcomes"):
        score_ab_test(["won"], [1], [1])
    with pytest.raises(ValueError, match="no prompt could be scored"):
        score_ab_test(["error", "unparsed"], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="no prompt could be scored"):
        score_ab_test([], [], [])
    with pytest.raises(ValueError, match="one element per prompt"):
        score_ab_test(["win"], [1, 2], [1])


def test_lc_win_rate_is_near_half_when_candidate_wins_only_by_being_longer():
    rng = np.random.default_rng(0)
    n_prompts = 4_000
    len_champion = rng.uniform(100, 400, n_prompts)
    len_candidate = len_champion * np.exp(rng.normal(0.4, 0.4, n_prompts))
    length_gap = (len_candidate - len_champion) / (len_candidate + len_champion)
    p_win = 1.0 / (1.0 + np.exp(-8.0 * length_gap))  # the judge only rewards length
    outcomes = np.where(rng.random(n_prompts) < p_win, "win", "loss").tolist()
    result = score_ab_test(outcomes, len_candidate, len_champion)
    assert result.win_rate > 0.70
    assert result.lc_win_rate == pytest.approx(0.5, abs=0.05)


def test_lc_win_rate_equals_raw_when_lengths_are_equal():
    scores = np.array([1.0] * 30 + [0.5] * 10 + [0.0] * 20)
    lc = length_controlled_win_rate(scores, np.full(60, 50.0), np.full(60, 50.0))
    assert lc == pytest.approx(scores.mean(), abs=1e-4)  # the tiny ridge only


def test_lc_win_rate_stays_finite_when_every_prompt_is_won():
    lc = length_controlled_win_rate(np.ones(20), np.arange(20.0) + 1, np.full(20, 5.0))
    assert 0.9 < lc < 1.0


def test_judge_audit_on_literal_games():
    games = [
        JudgedGame("b1", "AB", "first"),  # A
        JudgedGame("b1", "BA", "second"),  # A: consistent
        JudgedGame("b2", "AB", "first"),  # A
        JudgedGame("b2", "BA", "first"),  # B: position bias, inconsistent
        JudgedGame("b3", "AB", "tie"),
        JudgedGame("b3", "BA", "tie"),  # consistent tie
        JudgedGame("b4", "AB", None),  # unparsed: b4 has no consistency verdict
        JudgedGame("b4", "BA", "first"),
        JudgedGame("b5", "AB", "second"),  # b5 lacks its BA game
    ]
    audit = judge_audit(games)
    assert audit.n_games == 9 and audit.n_battles == 5
    assert audit.position_consistency == pytest.approx(2 / 3)
    assert audit.parse_failure_rate == pytest.approx(1 / 9)
    assert audit.first_position_win_share == pytest.approx(4 / 6)


def test_judge_audit_of_an_unbiased_consistent_judge():
    games = [JudgedGame("b1", "AB", "first"), JudgedGame("b1", "BA", "second")]
    games += [JudgedGame("b2", "AB", "second"), JudgedGame("b2", "BA", "first")]
    audit = judge_audit(games)
    assert (audit.position_consistency, audit.parse_failure_rate) == (1.0, 0.0)
    assert audit.first_position_win_share == 0.5


def test_judge_audit_rates_are_none_when_nothing_can_be_scored():
    empty = judge_audit([])
    assert (empty.position_consistency, empty.parse_failure_rate) == (None, None)
    assert empty.first_position_win_share is None and empty.n_games == 0
    unparsed = judge_audit([JudgedGame("b1", "AB", None), JudgedGame("b1", "BA", None)])
    assert unparsed.parse_failure_rate == 1.0 and unparsed.position_consistency is None


def test_judge_audit_refuses_two_games_in_the_same_order():
    with pytest.raises(ValueError, match="two games in order AB"):
        judge_audit([JudgedGame("b1", "AB", "first"), JudgedGame("b1", "AB", "tie")])
