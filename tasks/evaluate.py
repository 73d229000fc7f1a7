"""Step 6 of the round: candidate vs champion on the held-out prompts, ratings, judge audit.

The A/B battles reuse the battle machinery and its call cache (answers and judgments are
never paid for twice). Statistics are the pure functions of `evaluators/`; this module reads
their inputs from the warehouse and writes `evaluations` and `ratings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flywheel.config import Config
from flywheel.evaluators.abtest import (
    ABResult,
    Decision,
    JudgeAudit,
    JudgedGame,
    decide_promotion,
    judge_audit,
    score_ab_test,
)
from flywheel.evaluators.battle_counts import aggregate_battles
from flywheel.evaluators.ratings import Rating, bootstrap_ratings
from flywheel.evaluators.skills import check_answer
from flywheel.figures import count, interval, share, wins_ties_losses
from flywheel.logs import step_logger
from flywheel.pool.eval_set import eval_prompt_ids
from flywheel.tasks.answer import answer_as_student
from flywheel.tasks.general_check import GeneralChecks, gate_decision
from flywheel.tasks.judge import judge_battles
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.store import connect_warehouse, read_query
from flywheel.warehouse.writes import insert_new


@dataclass(frozen=True)
class EvaluationReport:
    evaluation_id: str
    ab: ABResult
    decision: Decision
    audit: JudgeAudit
    ratings: list[Rating]
    sandbox_accuracy_candidate: float | None
    sandbox_accuracy_champion: float | None


def evaluation_id_for(round_id: int, candidate: str, champion: str) -> str:
    return content_id(["evaluation", round_id, candidate, champion])


def run_eval_battles(
    config: Config,
    round_id: int,
    candidate: tuple[str, str],
    champion: tuple[str, str],
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Both models answer every held-out prompt; the judge compares them in both orders.

    `candidate` and `champion` are (version_id, checkpoint path). Each answers through
    `student.backend`; with a served backend each is served in turn (one server at a time).
    """
    prompt_ids = eval_prompt_ids(config)
    for version_id, path in (candidate, champion):
        answer_as_student(config, round_id, prompt_ids, version_id, path)
    pairs = [(prompt_id, candidate[0], champion[0]) for prompt_id in prompt_ids]
    judge_battles(config, round_id, pairs, "eval", on_progress=on_progress)


def checker_accuracy(answers: list[tuple[str, str]]) -> float | None:
    """Share of (prompt, answer) pairs the skill checker accepts; None when none is checkable."""
    verdicts = [check_answer(prompt, answer) for prompt, answer in answers]
    checked = [v for v in verdicts if v is not None]
    return sum(checked) / len(checked) if checked else None


def heldout_accuracy(config: Config, model_id: str) -> float | None:
    """Sandbox ground truth: checker accuracy of a model's held-out answers (None off-sandbox)."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("heldout_answers"), {"model_id": model_id}).fetchall()
    return checker_accuracy([(prompt_text, answer) for _, prompt_text, answer in rows])


def round_ratings(config: Config, round_id: int) -> list[Rating]:
    """Bradley-Terry ratings with bootstrap intervals from every battle of the round."""
    with connect_warehouse(config.warehouse) as con:
        battles = con.execute(read_query("round_battles"), {"round_id": round_id}).df()
    counts = aggregate_battles(battles["model_a"], battles["model_b"], battles["winner"])
    evaluation = config.evaluation
    anchor = evaluation.anchor_model if evaluation.anchor_model in counts.models else None
    return bootstrap_ratings(
        counts,
        n_samples=evaluation.bootstrap_samples,
        seed=evaluation.seed,
        anchor_model=anchor,
        anchor_rating=evaluation.anchor_rating,
        ci=evaluation.ci,
    )


def round_judge_audit(config: Config, round_id: int) -> JudgeAudit:
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            read_query("round_games"), {"round_id": round_id, "judge": config.judge.name}
        ).fetchall()
    games = [
        JudgedGame(battle_id, order, verdict if parse_ok else None)
        for battle_id, order, verdict, parse_ok in rows
    ]
    return judge_audit(games)


def ab_result(config: Config, round_id: int, candidate: str, champion: str) -> ABResult:
    params = {"round_id": round_id, "candidate": candidate, "champion": champion}
    with connect_warehouse(config.warehouse) as con:
        outcomes = con.execute(read_query("eval_outcomes"), params).df()
    if outcomes.empty:
        raise RuntimeError(
            f"round {round_id}: no eval battles of {candidate} vs {champion} to score"
        )
    return score_ab_test(
        outcomes["outcome"].tolist(),
        outcomes["len_candidate"].tolist(),
        outcomes["len_champion"].tolist(),
        n_samples=config.evaluation.bootstrap_samples,
        seed=config.evaluation.seed,
        ci=config.evaluation.ci,
    )


def evaluate_round(
    config: Config,
    round_id: int,
    candidate: str,
    champion: str,
    general: GeneralChecks | None = None,
) -> EvaluationReport:
    """Score the round's A/B battles, decide (the general set's limits included), rate every
    model, and store it all."""
    ab = ab_result(config, round_id, candidate, champion)
    ab_decision = decide_promotion(ab, config.evaluation.promotion_margin)
    decision = gate_decision(ab_decision, general, config.evaluation)
    audit = round_judge_audit(config, round_id)
    ratings = round_ratings(config, round_id)
    report = EvaluationReport(
        evaluation_id=evaluation_id_for(round_id, candidate, champion),
        ab=ab,
        decision=decision,
        audit=audit,
        ratings=ratings,
        sandbox_accuracy_candidate=heldout_accuracy(config, candidate),
        sandbox_accuracy_champion=heldout_accuracy(config, champion),
    )
    write_evaluation(config, round_id, candidate, champion, report)
    log_evaluation(round_id, candidate, champion, report)
    return report


def log_evaluation(round_id: int, candidate: str, champion: str, report: EvaluationReport) -> None:
    """The A/B on the eval set and the judge audit over the round's games, each figure once and
    rounded by flywheel/figures.py (the decision and its reason: the promote step's line)."""
    ab, audit, log = report.ab, report.audit, step_logger(__name__)
    accuracy = (
        ""
        if report.sandbox_accuracy_candidate is None
        else f"; checker accuracy candidate {share(report.sandbox_accuracy_candidate)}, "
        f"champion {share(report.sandbox_accuracy_champion)}"
    )
    log.info(
        "round %d A/B on the eval set: candidate %s vs champion %s over %s prompts: win rate %s, "
        "length-controlled %s, wins/ties/losses %s%s",
        round_id,
        candidate,
        champion,
        count(ab.n),
        interval(ab.win_rate, ab.ci_low, ab.ci_high),
        share(ab.lc_win_rate),
        wins_ties_losses(ab.wins, ab.ties, ab.losses),
        accuracy,
    )
    log.info(
        "round %d judge audit over %s games of the round (train battles and eval): position "
        "consistency %s, parse failures %s, first-position wins %s",
        round_id,
        count(audit.n_games),
        share(audit.position_consistency),
        share(audit.parse_failure_rate),
        share(audit.first_position_win_share),
    )


def write_evaluation(
    config: Config, round_id: int, candidate: str, champion: str, report: EvaluationReport
) -> None:
    ab, audit = report.ab, report.audit
    evaluation = {
        "evaluation_id": report.evaluation_id,
        "round_id": round_id,
        "candidate": candidate,
        "champion": champion,
        "n_prompts": ab.n,
        "wins": ab.wins,
        "ties": ab.ties,
        "losses": ab.losses,
        "n_excluded": ab.n_excluded,
        "win_rate": ab.win_rate,
        "win_rate_ci_low": ab.ci_low,
        "win_rate_ci_high": ab.ci_high,
        "lc_win_rate": ab.lc_win_rate,
        "mean_len_candidate": ab.mean_len_candidate,
        "mean_len_champion": ab.mean_len_champion,
        "position_consistency": audit.position_consistency,
        "parse_failure_rate": audit.parse_failure_rate,
        "first_position_win_share": audit.first_position_win_share,
        "sandbox_accuracy_candidate": report.sandbox_accuracy_candidate,
        "sandbox_accuracy_champion": report.sandbox_accuracy_champion,
        "decision": "promote" if report.decision.promote else "keep",
        "reason": report.decision.reason,
    }
    ratings = [
        {
            "round_id": round_id,
            "model_id": r.model,
            "rating": r.rating,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "n_battles": r.n_battles,
        }
        for r in report.ratings
    ]
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "evaluations", [evaluation], ["evaluation_id"])
        insert_new(con, "ratings", ratings, ["round_id", "model_id"])
