"""Candidate-vs-champion A/B statistics, the promotion rule, and judge audits.

The candidate and the champion answer the same held-out prompts; the same
judge decides each prompt in both answer orders, and the two games are
combined into one outcome per prompt, from the candidate's side:

- "win", "tie", "loss": scored (a tie is half a win);
- "inconsistent" (the two orders disagree): scored as a tie, since the judge
  could not separate the answers once position was accounted for; also
  counted in ``n_inconsistent``;
- "unparsed", "error": excluded from every rate and counted in ``n_excluded``.

Pure functions: no I/O, numpy/scipy only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit

SCORE_BY_OUTCOME: dict[str, float] = {"win": 1.0, "tie": 0.5, "inconsistent": 0.5, "loss": 0.0}
"""Candidate score per scored outcome."""

EXCLUDED_OUTCOMES = frozenset({"unparsed", "error"})
"""Outcomes counted but left out of every rate."""

_LC_RIDGE = 1e-3  # L2 on the logistic coefficients: keeps them finite when all prompts agree


@dataclass(frozen=True)
class ABResult:
    """Candidate vs champion over held-out prompts, from the candidate's side.

    Rates are shares of the ``n`` scored prompts with ties as half a win;
    lengths are in whatever unit the caller measured (tokens, characters), the
    same for both sides, averaged over the scored prompts.
    """

    n: int  # scored prompts: wins + ties + losses
    wins: int
    ties: int  # includes the inconsistent ones
    losses: int
    n_inconsistent: int
    n_excluded: int  # unparsed or error
    win_rate: float
    ci_low: float  # bootstrap percentile interval over prompts
    ci_high: float
    mean_len_candidate: float
    mean_len_champion: float
    lc_win_rate: float  # length-controlled: predicted win rate at equal lengths


@dataclass(frozen=True)
class Decision:
    """Whether the candidate replaces the champion, and why, with the numbers."""

    promote: bool
    reason: str


@dataclass(frozen=True)
class JudgedGame:
    """One judged game: one battle shown to the judge in one answer order.

    ``order`` "AB" shows answer A first, "BA" shows answer B first;
    ``winner_position`` is the position the judge preferred ("first",
    "second", "tie"), or None when its verdict could not be parsed.
    """

    battle_id: str
    order: Literal["AB", "BA"]
    winner_position: Literal["first", "second", "tie"] | None


@dataclass(frozen=True)
class JudgeAudit:
    """Health of a judge over a set of games; a rate is None when nothing could be scored.

    ``position_consistency``: share of battles with both orders parsed whose
    two games name the same winner (A, B or tie) once the order is undone.
    ``parse_failure_rate``: unparsed games / all games.
    ``first_position_win_share``: among decisive parsed games, the share won by
    the answer shown first (0.5 for a judge without position bias).
    """

    position_consistency: float | None
    parse_failure_rate: float | None
    first_position_win_share: float | None
    n_battles: int
    n_games: int


def score_ab_test(
    outcomes: Sequence[str],
    len_candidate: Sequence[float],
    len_champion: Sequence[float],
    n_samples: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> ABResult:
    """Summarise per-prompt outcomes (one element per prompt) into an ``ABResult``.

    The interval is a seeded percentile bootstrap over prompts with
    ``n_samples`` resamples and central coverage ``ci``. Raises ValueError on
    an unknown outcome, mismatched lengths, or when no prompt could be scored.
    """
    outcome_list = list(outcomes)
    lengths_cand = np.asarray(len_candidate, dtype=np.float64)
    lengths_champ = np.asarray(len_champion, dtype=np.float64)
    if not len(outcome_list) == len(lengths_cand) == len(lengths_champ):
        raise ValueError(
            f"outcomes, len_candidate and len_champion need one element per prompt; got "
            f"{len(outcome_list)}, {len(lengths_cand)}, {len(lengths_champ)}"
        )
    unknown = set(outcome_list) - set(SCORE_BY_OUTCOME) - EXCLUDED_OUTCOMES
    if unknown:
        raise ValueError(
            f"unknown outcomes {sorted(unknown)}; expected one of "
            f"{sorted(SCORE_BY_OUTCOME) + sorted(EXCLUDED_OUTCOMES)}"
        )
    if n_samples < 1 or not 0.0 < ci < 1.0:
        raise ValueError(f"need n_samples >= 1 and 0 < ci < 1; got {n_samples}, {ci}")
    scored = np.array([o in SCORE_BY_OUTCOME for o in outcome_list], dtype=bool)
    n_excluded = int((~scored).sum())
    if not scored.any():
        raise ValueError(
            f"no prompt could be scored: all {len(outcome_list)} are unparsed or error"
        )
    scores = np.array([SCORE_BY_OUTCOME[o] for o in outcome_list if o in SCORE_BY_OUTCOME])
    wins, losses = int((scores == 1.0).sum()), int((scores == 0.0).sum())
    ties = len(scores) - wins - losses
    ci_low, ci_high = _bootstrap_win_rate(wins, ties, losses, n_samples, seed, ci)
    lengths_cand, lengths_champ = lengths_cand[scored], lengths_champ[scored]
    return ABResult(
        n=len(scores),
        wins=wins,
        ties=ties,
        losses=losses,
        n_inconsistent=outcome_list.count("inconsistent"),
        n_excluded=n_excluded,
        win_rate=float(scores.mean()),
        ci_low=ci_low,
        ci_high=ci_high,
        mean_len_candidate=float(lengths_cand.mean()),
        mean_len_champion=float(lengths_champ.mean()),
        lc_win_rate=length_controlled_win_rate(scores, lengths_cand, lengths_champ),
    )


def length_controlled_win_rate(
    scores: np.ndarray, len_candidate: np.ndarray, len_champion: np.ndarray
) -> float:
    """Candidate win rate predicted at equal answer lengths.

    Fits logit P(candidate wins) = b0 + b1 * d by maximum likelihood with
    fractional outcomes (score 0, 0.5 or 1; a tie is half a win), where
    d = (len_candidate - len_champion) / (len_candidate + len_champion) is the
    normalised length difference in [-1, 1] (0 when both are empty), and
    returns sigmoid(b0): the win rate at d = 0. A tiny ridge on (b0, b1) keeps
    the fit finite when every prompt has the same outcome.
    """
    y = np.asarray(scores, dtype=np.float64)
    total = np.asarray(len_candidate, dtype=np.float64) + np.asarray(len_champion, np.float64)
    diff = np.asarray(len_candidate, dtype=np.float64) - np.asarray(len_champion, np.float64)
    d = np.divide(diff, total, out=np.zeros_like(diff), where=total > 0)
    design = np.column_stack([np.ones_like(d), d])

    def objective(beta: np.ndarray) -> float:
        logits = design @ beta
        return float(np.sum(np.logaddexp(0.0, logits) - y * logits) + 0.5 * _LC_RIDGE * beta @ beta)

    beta, value = np.zeros(2), objective(np.zeros(2))
    for _ in range(100):
        p = expit(design @ beta)
        gradient = design.T @ (p - y) + _LC_RIDGE * beta
        hessian = (design.T * (p * (1.0 - p))) @ design + _LC_RIDGE * np.eye(2)
        step = -np.linalg.solve(hessian, gradient)
        for _ in range(40):  # halve Newton steps that overshoot
            trial_value = objective(beta + step)
            if trial_value <= value:
                break
            step *= 0.5
        else:
            break
        beta, value = beta + step, trial_value
        if np.abs(step).max() < 1e-10:
            break
    return float(expit(beta[0]))


def decide_promotion(
    result: ABResult,
    margin: float = 0.0,
    unit: str = "prompts",
    size_setting: str = "prompts.eval_size",
) -> Decision:
    """Promote only when the interval's lower bound beats 0.5 + ``margin`` (a win-rate share).
    The reason counts the A/B's items in ``unit`` and names ``size_setting`` as the setting
    that gives it more of them.

    ``margin`` is in [0, 0.5): 0 asks only for a significant improvement,
    0.05 for one of at least five points.
    """
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5) as a win-rate share; got {margin}")
    threshold = 0.5 + margin
    promote = result.ci_low > threshold
    excluded = f" ({result.n_excluded} excluded)" if result.n_excluded else ""
    reason = (
        f"win rate {result.win_rate:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}] over "
        f"{result.n} {unit}{excluded}; lower bound {result.ci_low:.3f} "
        f"{'>' if promote else '<='} 0.50 + margin {margin:.2f}"
    )
    needed = None if promote else prompts_to_confirm(result, threshold)
    if needed is not None:
        reason += (
            f"; a lead this size would need about {needed} {unit} to be confirmed ({size_setting})"
        )
    return Decision(promote=promote, reason=reason)


def prompts_to_confirm(result: ABResult, threshold: float) -> int | None:
    """About how many scored prompts (or conversations) would put the interval's lower bound
    above `threshold` if the win rate stayed where it is: the interval narrows as 1 / sqrt(n),
    so n x (half-width / lead)^2. None when the win rate is not above `threshold` (no lead to
    confirm) or the interval has no width."""
    lead = result.win_rate - threshold
    half_width = result.win_rate - result.ci_low
    if lead <= 0 or half_width <= 0 or result.n == 0:
        return None
    return math.ceil(result.n * (half_width / lead) ** 2)


def judge_audit(games: Iterable[JudgedGame]) -> JudgeAudit:
    """Position consistency, parse failures and first-position bias over judged games.

    Raises ValueError when a battle has two games in the same order or more
    than two games.
    """
    game_list = list(games)
    orders_by_battle: dict[str, dict[str, str | None]] = defaultdict(dict)
    for game in game_list:
        if game.order not in ("AB", "BA"):
            raise ValueError(f"battle {game.battle_id!r}: order must be 'AB' or 'BA'")
        if game.order in orders_by_battle[game.battle_id]:
            raise ValueError(f"battle {game.battle_id!r} has two games in order {game.order}")
        orders_by_battle[game.battle_id][game.order] = game.winner_position

    n_unparsed = sum(game.winner_position is None for game in game_list)
    decisive = [g for g in game_list if g.winner_position in ("first", "second")]
    n_first = sum(g.winner_position == "first" for g in decisive)
    pairs = [
        (_unswap("AB", verdicts["AB"]), _unswap("BA", verdicts["BA"]))
        for verdicts in orders_by_battle.values()
        if verdicts.get("AB") is not None and verdicts.get("BA") is not None
    ]
    n_agree = sum(ab == ba for ab, ba in pairs)
    return JudgeAudit(
        position_consistency=n_agree / len(pairs) if pairs else None,
        parse_failure_rate=n_unparsed / len(game_list) if game_list else None,
        first_position_win_share=n_first / len(decisive) if decisive else None,
        n_battles=len(orders_by_battle),
        n_games=len(game_list),
    )


def _unswap(order: str, winner_position: str | None) -> str | None:
    """The winner as "A", "B" or "tie" given the order the answers were shown in."""
    if winner_position in (None, "tie"):
        return winner_position
    first, second = ("A", "B") if order == "AB" else ("B", "A")
    return first if winner_position == "first" else second


def _bootstrap_win_rate(
    wins: int, ties: int, losses: int, n_samples: int, seed: int, ci: float
) -> tuple[float, float]:
    """Percentile bootstrap interval of the win rate; resampling prompts is multinomial."""
    n = wins + ties + losses
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, np.array([wins, ties, losses]) / n, size=n_samples)
    win_rates = (draws[:, 0] + 0.5 * draws[:, 1]) / n
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(win_rates, [tail, 1.0 - tail])
    return float(low), float(high)
