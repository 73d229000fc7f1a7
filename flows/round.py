"""One round of the flywheel as a Prefect flow: `round-<n>-<stage>` in the UI.

Every step asks the warehouse what is already done and does only the rest, so running a
round again after a crash repeats no model call and writes no duplicate row.
"""

# No `from __future__ import annotations` here: a served run rebuilds these flows in a
# subprocess (cloudpickle), where postponed annotations such as `Config` cannot be resolved.
import time
from dataclasses import dataclass

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flywheel.config import Config
from flywheel.flows.progress import StepProgress
from flywheel.flows.round_outcome import decided, tagged_failed_on_error
from flywheel.llm.checkpoints import configure_cpu_threads
from flywheel.llm.train_progress import reporting_training_progress
from flywheel.logs import step_logger
from flywheel.pool.logs_ingest import add_configured_logs
from flywheel.tasks.answer import AnswerReport, answer_prompts
from flywheel.tasks.battle_plan import Pair, train_battle_pairs
from flywheel.tasks.classify_feedback import classify_logged_feedback
from flywheel.tasks.draw import draw_round_slice
from flywheel.tasks.evaluate import EvaluationReport, evaluate_round, run_eval_battles
from flywheel.tasks.general_check import GeneralChecks, check_general
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.judge_report import JudgeReport
from flywheel.tasks.mine import MiningReport, mine_round
from flywheel.tasks.promote import (
    PromotionDecision,
    approval_summary,
    ask_for_approval,
    decide_round,
)
from flywheel.tasks.prune import prune_after_round
from flywheel.tasks.report import publish_round_report
from flywheel.tasks.select import select_train_battles
from flywheel.tasks.train import StageResult, run_training_stage
from flywheel.warehouse.lifecycle import (
    ModelVersion,
    add_round_time,
    current_champion,
    mark_round_done,
    record_round_start,
    recorded_champion,
)
from flywheel.warehouse.store import now_utc


@dataclass(frozen=True)
class RoundResult:
    round_id: int
    stage: str
    champion_before: str
    decision: PromotionDecision
    wall_s: float


@task(name="logs", cache_policy=NO_CACHE)
def read_new_logs(config: Config) -> None:
    """0. What is new in the production logs `logs.paths` names: conversations, feedback, and
    their opening prompts into the pool (before the draw, so tonight's slice can hold them);
    with `logs.classify`, then the implicit feedback the classifier reads in the users' next
    turns (only the pairs not read yet)."""
    report = add_configured_logs(config)
    if report is not None:
        step_logger("logs").info(report.summary())
    if config.logs.classify:
        step_logger("logs").info(classify_logged_feedback(config).summary())


@task(name="draw", cache_policy=NO_CACHE)
def draw_prompts(config: Config, round_id: int) -> list[str]:
    """1. This round's fresh, deduplicated, decontaminated slice D_i."""
    return draw_round_slice(config, round_id)


@task(name="answer", cache_policy=NO_CACHE)
def answer(
    config: Config,
    round_id: int,
    prompt_ids: list[str],
    champion: ModelVersion,
) -> AnswerReport:
    """2. The champion answers through student.backend; each reference through its endpoint."""
    progress = StepProgress(f"round-{round_id}-answer-progress", f"round {round_id}: answers")
    try:
        return answer_prompts(
            config,
            round_id,
            prompt_ids,
            champion_id=champion.version_id,
            champion_path=champion.checkpoint_path,
            purpose="train",
            on_progress=progress,
        )
    finally:
        progress.close()


@task(name="select", cache_policy=NO_CACHE)
def select(
    config: Config, round_id: int, prompt_ids: list[str], champion: ModelVersion
) -> list[Pair]:
    """3a. The (champion, reference) battles to judge: all, or with judge.selection a budget of
    them (those a reward-model ensemble most expects the champion to lose or is least sure of,
    or a seeded random subset)."""
    pairs = train_battle_pairs(config, round_id, prompt_ids, champion.version_id)
    return select_train_battles(config, round_id, pairs, champion).pairs


@task(name="judge", cache_policy=NO_CACHE)
def judge(config: Config, round_id: int, pairs: list[Pair]) -> JudgeReport:
    """3b. Every selected battle judged A/B and B/A, combined into battles."""
    progress = StepProgress(f"round-{round_id}-judge-progress", f"round {round_id}: judging")
    try:
        return judge_battles(config, round_id, pairs, "train", on_progress=progress)
    finally:
        progress.close()


@task(name="mine", cache_policy=NO_CACHE)
def mine(config: Config, round_id: int, stage: str) -> MiningReport:
    """4. Losses become SFT targets (the winner's answer, or with sft_rule refine a
    reference's correction of the champion's); wins and losses become DPO and RM pairs."""
    return mine_round(config, round_id, stage)


class StageFailedError(RuntimeError):
    """The round's training stage raised; the round fails and a rerun trains it again."""


@task(name="train", cache_policy=NO_CACHE)
def train(
    config: Config,
    round_id: int,
    stage: str,
    champion: ModelVersion,
) -> StageResult:
    """5. The round's stage (sft | dpo | rm+rl | kto | orpo | online-dpo) trains a candidate
    from the champion; online-dpo first samples, scores and pairs the champion's answers.

    A stage that raised fails the round (its cause is in `training_runs` and `rounds`); a
    stage skipped for too few mined rows does not.
    """
    progress = StepProgress(f"round-{round_id}-train-progress", f"round {round_id}: {stage}")
    try:
        with reporting_training_progress(progress):
            trained = run_training_stage(config, round_id, stage, champion, on_progress=progress)
    finally:
        progress.close()
    if trained.status == "failed":
        raise StageFailedError(f"round {round_id}: the {stage} stage failed: {trained.reason}")
    return trained


@task(name="general-check", cache_policy=NO_CACHE)
def general_check(
    config: Config, round_id: int, trained: StageResult, champion: ModelVersion
) -> GeneralChecks | None:
    """6a. Champion and candidate on the held-out general set: NLL of its good answers, replies
    collapsing into the answer format (evaluation.general_check, local checkpoints)."""
    if trained.candidate is None or trained.candidate_path is None:
        return None
    progress = StepProgress(f"round-{round_id}-general-progress", f"round {round_id}: general set")
    try:
        return check_general(
            config,
            round_id,
            (trained.candidate, trained.candidate_path),
            (champion.version_id, champion.checkpoint_path),
            on_progress=progress,
        )
    finally:
        progress.close()


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(
    config: Config,
    round_id: int,
    trained: StageResult,
    champion: ModelVersion,
    general: GeneralChecks | None = None,
) -> EvaluationReport | None:
    """6b. Candidate vs champion on the held-out prompts, both orders; ratings; judge audit;
    the A/B decision, refused past an evaluation.general_max_* limit or by the objective
    guard (evaluation.objective_max_drop)."""
    if trained.candidate is None or trained.candidate_path is None:
        return None
    answers = StepProgress(
        f"round-{round_id}-eval-answer-progress", f"round {round_id}: A/B eval answers"
    )
    progress = StepProgress(f"round-{round_id}-eval-progress", f"round {round_id}: A/B eval")
    try:
        run_eval_battles(
            config,
            round_id,
            (trained.candidate, trained.candidate_path),
            (champion.version_id, champion.checkpoint_path),
            on_progress=progress,
            on_answer_progress=answers,
        )
    finally:
        answers.close()
        progress.close()
    return evaluate_round(config, round_id, trained.candidate, champion.version_id, general)


@task(name="promote", cache_policy=NO_CACHE)
def promote(
    config: Config,
    round_id: int,
    champion: ModelVersion,
    trained: StageResult,
    evaluation: EvaluationReport | None,
) -> PromotionDecision:
    """7. The champion moves only when the candidate is significantly better (and, with
    evaluation.approval manual, a person approves it in the UI)."""
    if evaluation is None:
        return decide_round(
            config,
            round_id,
            champion=champion.version_id,
            candidate=None,
            promote=False,
            reason=f"stage {trained.status}: {trained.reason}; champion kept",
        )
    promote_now, reason = evaluation.decision.promote, evaluation.decision.reason
    if promote_now and trained.candidate and config.evaluation.approval == "manual":
        summary = approval_summary(round_id, trained.candidate, champion.version_id, evaluation)
        answer = ask_for_approval(config, summary, reason)
        promote_now, reason = answer.approved, answer.reason
    return decide_round(
        config,
        round_id,
        champion=champion.version_id,
        candidate=trained.candidate,
        promote=promote_now,
        reason=reason,
    )


@task(name="retention", cache_policy=NO_CACHE)
def retain(config: Config) -> None:
    """Delete rejected checkpoints beyond training.keep_rejected (when set); rows stay."""
    prune_after_round(config)


@task(name="report", cache_policy=NO_CACHE)
def report(config: Config, round_id: int) -> None:
    """8. Prefect artifacts: the round-metrics tables, the trend and the round's summary."""
    publish_round_report(config, round_id)


@flow(name="arena-round", flow_run_name="round-{round_id}-{stage}", log_prints=False)
def arena_round(config: Config, round_id: int, stage: str) -> State:
    """One round, top to bottom:

    0. logs      what is new in the production logs (logs.paths), when the config names some
    1. draw      fresh prompts D_i for this round
    2. answer    the champion and every reference answer them
    3. select    the (champion, reference) battles to judge: all, or a budget of them
       judge     every selected battle judged in both orders
    4. mine      battles -> SFT examples, DPO pairs, RM pairs
    5. train     the round's stage trains a candidate
    6a. general  champion and candidate on the general set (what they still know)
    6b. evaluate candidate vs champion on held-out prompts; ratings; the gate's decision
    7. promote   the champion moves only on a significant win (then retention, when set)
    8. report    round-metrics table and summary in the Prefect UI

    Its flow run ends Completed with the decision as the state's message and is tagged
    `promoted` or `kept` (`failed` when it raises); calling it returns the `RoundResult`.
    """
    started = time.monotonic()
    with tagged_failed_on_error():
        champion = start_round(config, round_id, stage)
        read_new_logs(config)
        prompt_ids = draw_prompts(config, round_id)
        answer(config, round_id, prompt_ids, champion)
        pairs = select(config, round_id, prompt_ids, champion)
        judge(config, round_id, pairs)
        mine(config, round_id, stage)
        trained = train(config, round_id, stage, champion)
        general = general_check(config, round_id, trained, champion)
        evaluation = evaluate(config, round_id, trained, champion, general)
        decision = promote(config, round_id, champion, trained, evaluation)
        retain(config)
        wall_s = add_round_time(config.warehouse, round_id, time.monotonic() - started)
        report(config, round_id)
        mark_round_done(config.warehouse, round_id)
    result = RoundResult(round_id, stage, champion.version_id, decision, wall_s)
    return decided(result, decision, champion.version_id, evaluation)


def start_round(config: Config, round_id: int, stage: str) -> ModelVersion:
    """Record the round as running (once) and return the champion it battles with.

    On a resumed round the champion is the one recorded when it first started.
    """
    configure_cpu_threads(config.training.cpu_threads)  # local generation and training
    champion = current_champion(config.warehouse)
    row = {
        "round_id": round_id,
        "stage": stage,
        "slice_id": round_id,
        "status": "running",
        "champion_before": champion.version_id,
        "config_hash": config.fingerprint(),
        "started_at": now_utc(),
    }
    record_round_start(config.warehouse, row)
    return recorded_champion(config.warehouse, round_id)
