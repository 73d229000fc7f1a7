"""Step 6 of the round: candidate vs champion on the held-out prompts, ratings, judge audit.

`evaluation.mode` says what is compared: single_turn (each model's answer to each held-out
prompt, battles of purpose `eval`), conversations (each persona's whole conversation with each
model, tasks/simulate.py and tasks/judge_conversations.py, battles of purpose
`eval_conversation`), or both, decided by `evaluation.combine` into one decision whose reason
carries both win rates. The decision is then checked against the general set's limits
(tasks/general_check.py) and the objective guard (tasks/objective_check.py: a candidate that
loses more than `evaluation.objective_max_drop` of accuracy on an objective set is refused).
The A/B battles reuse the battle machinery and its call cache (answers, simulated turns and
judgments are never paid for twice). Statistics are the pure functions of `evaluators/`; this
module reads their inputs from the warehouse and writes `evaluations` and `ratings`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flywheel.config import Config, EvaluationConfig
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
from flywheel.evaluators.objective import (
    ObjectiveComparison,
    ObjectiveVerdict,
    guarded_decision,
    objective_verdict,
)
from flywheel.evaluators.ratings import Rating, bootstrap_ratings
from flywheel.evaluators.skills import check_answer
from flywheel.figures import count, interval, share, wins_ties_losses
from flywheel.logs import step_logger
from flywheel.pool.eval_set import eval_prompt_ids
from flywheel.tasks.answer import answer_as_student
from flywheel.tasks.general_check import (
    GeneralChecks,
    first_champion_columns,
    gate_decision,
    general_refusal,
)
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.judge_conversations import judge_conversations
from flywheel.tasks.objective_check import objective_columns, objective_comparison
from flywheel.tasks.progress_sum import ProgressSum
from flywheel.tasks.simulate import round_personas, simulate_conversations
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
    conversation_ab: ABResult | None = None  # the conversation A/B (mode conversations, both)
    objective: ObjectiveComparison | None = None  # both models on the objective set, if any
    objective_verdict: ObjectiveVerdict | None = None  # the objective guard's outcome
    general: GeneralChecks | None = None  # the general set's figures, if measured
    refusals: tuple[str, ...] = ()  # each guard that refused the candidate, in one clause


def evaluation_id_for(round_id: int, candidate: str, champion: str) -> str:
    return content_id(["evaluation", round_id, candidate, champion])


def run_eval_battles(
    config: Config,
    round_id: int,
    candidate: tuple[str, str],
    champion: tuple[str, str],
    on_progress: Callable[[int, int], None] | None = None,
    on_answer_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Both models answer every held-out prompt (mode conversations: each persona's opening);
    the judge compares them in both orders; in mode conversations and both, each persona
    talks with both models and the judge compares the conversations.

    `candidate` and `champion` are (version_id, checkpoint path). Each answers through
    `student.backend`; with a served backend each is served in turn (one server at a time).
    `on_answer_progress(done, total)` follows both models' answers; `on_progress` the judging.
    """
    mode = config.evaluation.mode
    personas = round_personas(config) if mode != "single_turn" else []
    if mode == "conversations":
        prompt_ids = list(dict.fromkeys(p.prompt_id for p in personas))
    else:
        prompt_ids = eval_prompt_ids(config)
    answered = ProgressSum(
        on_answer_progress, {candidate[0]: len(prompt_ids), champion[0]: len(prompt_ids)}
    )
    for version_id, path in (candidate, champion):
        answer_as_student(
            config, round_id, prompt_ids, version_id, path, on_progress=answered.part(version_id)
        )
    if mode != "conversations":
        pairs = [(prompt_id, candidate[0], champion[0]) for prompt_id in prompt_ids]
        judge_battles(config, round_id, pairs, "eval", on_progress=on_progress)
    if personas:
        simulate_conversations(config, round_id, personas, (candidate, champion))
        judge_conversations(config, round_id, candidate[0], champion[0], on_progress=on_progress)


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


def ab_result(
    config: Config, round_id: int, candidate: str, champion: str, query: str = "eval_outcomes"
) -> ABResult:
    """The A/B of the round's battles that `query` reads (eval_outcomes: single turns;
    conversation_outcomes: conversations)."""
    params = {"round_id": round_id, "candidate": candidate, "champion": champion}
    with connect_warehouse(config.warehouse) as con:
        outcomes = con.execute(read_query(query), params).df()
    if outcomes.empty:
        what = "eval" if query == "eval_outcomes" else "conversation"
        raise RuntimeError(
            f"round {round_id}: no {what} battles of {candidate} vs {champion} to score"
        )
    return score_ab_test(
        outcomes["outcome"].tolist(),
        outcomes["len_candidate"].tolist(),
        outcomes["len_champion"].tolist(),
        n_samples=config.evaluation.bootstrap_samples,
        seed=config.evaluation.seed,
        ci=config.evaluation.ci,
    )


MODE_QUERIES = {"single_turn": "eval_outcomes", "conversations": "conversation_outcomes"}
MODE_LABELS = {"single_turn": "single turn", "conversations": "conversations"}
# what each mode's A/B counts, and the setting that gives it more of them
MODE_UNITS = {
    "single_turn": ("prompts", "prompts.eval_size"),
    "conversations": ("conversations", "evaluation.conversations.n_conversations"),
}


def mode_results(
    config: Config, round_id: int, candidate: str, champion: str
) -> dict[str, ABResult]:
    """The A/B of each compared mode: single_turn, conversations, or both."""
    mode = config.evaluation.mode
    modes = ("single_turn", "conversations") if mode == "both" else (mode,)
    return {m: ab_result(config, round_id, candidate, champion, MODE_QUERIES[m]) for m in modes}


def combined_decision(results: dict[str, ABResult], evaluation: EvaluationConfig) -> Decision:
    """One decision from each mode's gate (`evaluation.combine`): promoted only when every
    gating mode passes; the reason gives every mode's figures, naming one reported only."""
    margin = evaluation.promotion_margin
    decisions = {m: decide_promotion(ab, margin, *MODE_UNITS[m]) for m, ab in results.items()}
    if list(decisions) == ["single_turn"]:
        return decisions["single_turn"]
    gated = evaluation.gates_on
    parts = [
        f"{MODE_LABELS[m]}{'' if m in gated else ' (reported, not gating)'}: {d.reason}"
        for m, d in decisions.items()
    ]
    promote = all(decisions[m].promote for m in gated)
    return Decision(promote=promote, reason="; ".join(parts))


def evaluate_round(
    config: Config,
    round_id: int,
    candidate: str,
    champion: str,
    general: GeneralChecks | None = None,
) -> EvaluationReport:
    """Score the round's A/B battles, decide (the general set's limits and the objective guard
    included), rate every model, and store it all."""
    results = mode_results(config, round_id, candidate, champion)
    ab = results.get("single_turn") or results["conversations"]
    decision = gate_decision(
        combined_decision(results, config.evaluation), general, config.evaluation
    )
    objective, why_missing = objective_comparison(config, round_id, candidate, champion)
    verdict = objective_verdict(objective, config.evaluation.objective_max_drop, why_missing)
    decision = guarded_decision(decision, verdict)
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
        conversation_ab=results.get("conversations"),
        objective=objective,
        objective_verdict=verdict,
        general=general,
        refusals=tuple(
            r for r in (general_refusal(general, config.evaluation), verdict.refusal) if r
        ),
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
    for result, what in ((ab, "prompts"), (report.conversation_ab, "conversations")):
        if result is None or (what == "prompts" and result is report.conversation_ab):
            continue
        log.info(
            "round %d A/B on the eval set: candidate %s vs champion %s over %s %s: win rate "
            "%s, length-controlled %s, wins/ties/losses %s%s",
            round_id,
            candidate,
            champion,
            count(result.n),
            what,
            interval(result.win_rate, result.ci_low, result.ci_high),
            share(result.lc_win_rate),
            wins_ties_losses(result.wins, result.ties, result.losses),
            accuracy if what == "prompts" else "",
        )
    verdict = report.objective_verdict
    if verdict is not None and verdict.note is not None:
        outcome = verdict.outcome.replace("_", " ")
        log.info("round %d objective guard (%s): %s", round_id, outcome, verdict.note)
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
        **objective_columns(
            report.objective, report.objective_verdict, config.evaluation.objective_max_drop
        ),
        **first_champion_columns(report.general),
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
