"""Step 5 of the round: the round's stage trains a candidate from the champion on the mined rows.

The stages are the pure ones of `llm/stages/` (looked up in its registry); this step reads the
mined rows, skips a stage with too few, and records the training run and the candidate in the
warehouse.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.figures import count, duration, measure
from flywheel.llm.calls import ProgressFn
from flywheel.llm.launch_checks import launcher_problems
from flywheel.llm.launcher import StageJob, launch_stage
from flywheel.llm.stage_setup import StageSetup, check_target_modules
from flywheel.llm.stages.registry import stage_named, stage_settings
from flywheel.llm.stages.spec import Stage, StageRun, TrainResult
from flywheel.llm.winrate_stop import WinRateSetup, winrate_split
from flywheel.logs import step_logger
from flywheel.tasks.mine import TrainingRows, training_mix
from flywheel.tasks.online_pairs import prepare_stage_rows
from flywheel.warehouse.lifecycle import ModelVersion, record_training, recorded_training
from flywheel.warehouse.store import connect_warehouse, read_query


@dataclass(frozen=True)
class StageResult:
    """A round's training stage: `done` with a candidate, or `skipped`/`failed` with a reason."""

    status: str  # done | skipped | failed
    candidate: str | None
    candidate_path: str | None
    reason: str
    n_examples: int


def candidate_version_id(round_id: int, stage: str) -> str:
    return f"r{round_id}-{stage.replace('+', '-')}"


def _recorded_stage(config: Config, round_id: int) -> StageResult | None:
    """The stage's outcome if this round already recorded one (a resumed round trains once)."""
    row = recorded_training(config.warehouse, round_id)
    return StageResult(*row) if row else None


def _slice_prompts(config: Config, round_id: int) -> list[list[dict[str, str]]]:
    """The round's prompts as conversations, for the RL stage."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("prompts_slice_messages"), [round_id]).fetchall()
    return [json.loads(messages) for (messages,) in rows]


def stage_setup(config: Config) -> StageSetup:
    """The `training` settings every stage shares: LoRA when enabled, CPU threads."""
    training = config.training
    return StageSetup(
        lora=training.lora if training.lora.enabled else None, cpu_threads=training.cpu_threads
    )


def rl_prompts(
    config: Config, round_id: int
) -> tuple[list[list[dict[str, str]]], WinRateSetup | None]:
    """The prompts RL trains on and, with `training.rl.winrate_check_every`, the win-rate
    check's held-out prompts (a seeded `winrate_prompts` of the slice, not trained on) and its
    judge (the configured judge, calls stored with the round, tasks/rl_winrate.py)."""
    from flywheel.tasks.rl_winrate import winrate_judge

    prompts, rl = _slice_prompts(config, round_id), config.training.rl
    if rl.winrate_check_every == 0:
        return prompts, None
    train, heldout = winrate_split(prompts, rl.winrate_prompts, config.training.seed + round_id)
    return train, WinRateSetup(winrate_judge(config, round_id), heldout)


def _train(
    config: Config,
    round_id: int,
    stage: Stage,
    base_path: str,
    rows: list[dict],
    out_path: Path,
) -> TrainResult:
    """The stage in this process (with the round's prompts and the RL win-rate check when it
    trains on prompts), or under `accelerate launch`."""
    if config.training.launcher == "accelerate":
        return _launch(config, round_id, stage, base_path, rows, out_path)
    prompts, winrate = rl_prompts(config, round_id) if stage.trains_on_prompts else (None, None)
    run = StageRun(
        base_path=base_path,
        rows=rows,
        out_path=out_path,
        settings=stage_settings(config.training, stage),
        seed=config.training.seed + round_id,
        setup=stage_setup(config),
        prompts=prompts,
        max_completion_tokens=config.student.max_new_tokens,
        winrate=winrate,
    )
    return stage.train(run)


def _launch(
    config: Config, round_id: int, stage: Stage, base_path: str, rows: list[dict], out_path: Path
) -> TrainResult:
    """The stage as an `accelerate launch` subprocess, checked first (a bad launcher setting or
    LoRA target is refused before anything starts). On CPU the threads are shared out."""
    training = config.training
    problems = launcher_problems(training)
    if problems:
        raise InputError("; ".join(problems))
    setup = stage_setup(config)
    if setup.lora is not None:
        check_target_modules(base_path, setup.lora)
    threads = max(1, training.cpu_threads // training.num_processes)
    settings = stage_settings(training, stage)
    job = StageJob(
        stage=stage.name,
        version_id=candidate_version_id(round_id, stage.name),
        base_path=base_path,
        out_path=str(out_path),
        seed=training.seed + round_id,
        settings={key: cfg.model_dump() for key, cfg in settings.items()},
        setup={**setup.describe(), "cpu_threads": threads},
        rows=rows,
        prompts=_slice_prompts(config, round_id) if stage.trains_on_prompts else None,
        max_completion_tokens=config.student.max_new_tokens,
    )
    return launch_stage(job, training)


def run_training_stage(
    config: Config,
    round_id: int,
    stage: str,
    champion: ModelVersion,
    on_progress: ProgressFn | None = None,
) -> StageResult:
    """Train the round's candidate from the champion on the mined rows, and record it.

    The online-dpo stage's rows are made first (the champion's samples scored and paired,
    tasks/online_pairs.py; `on_progress` hears of the samples). Fewer rows than the stage's
    `min_examples`, or no way to make them, skips the stage; an exception leaves the champion
    and the warehouse as they were, with the error recorded.
    """
    recorded = _recorded_stage(config, round_id)
    if recorded is not None:
        return recorded
    unavailable = prepare_stage_rows(config, round_id, stage, champion, on_progress)
    mix = training_mix(config, round_id, stage)
    rows = mix.rows
    spec = stage_named(stage)
    version_id = candidate_version_id(round_id, stage)
    run = {
        "run_id": f"{version_id}-{len(rows)}",
        "round_id": round_id,
        "stage": stage,
        "base_version": champion.version_id,
        "n_examples": len(rows),
        "hyperparams": json.dumps(mix.recorded()),
    }
    min_examples = stage_settings(config.training, spec)[spec.main_section].min_examples
    if unavailable is not None or len(rows) < min_examples:
        field = f"training.{spec.main_section}.min_examples"
        reason = unavailable or f"{len(rows)} mined examples, fewer than the {min_examples} {field}"
        skipped = {**run, "status": "skipped", "reason": reason}
        record_training(config.warehouse, skipped, candidate=None)
        step_logger(__name__).info("round %d %s stage skipped: %s", round_id, stage, reason)
        return StageResult("skipped", None, None, reason=reason, n_examples=len(rows))
    out_path = Path(config.training.output_dir) / version_id
    for stale in (out_path, *spec.side_outputs(out_path)):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run killed before it was recorded
    try:
        result = _train(config, round_id, spec, champion.checkpoint_path, rows, out_path)
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
        failed_id = f"{run['run_id']}-failed-{int(time.time())}"
        failed = {**run, "run_id": failed_id, "status": "failed", "reason": reason[:2000]}
        record_training(config.warehouse, failed, candidate=None)
        return StageResult("failed", None, None, reason=reason, n_examples=len(rows))
    _log_trained(round_id, spec, version_id, mix, result)
    _record_candidate(config, run, champion, result, version_id, mix)
    return StageResult("done", version_id, str(result.output_path), "trained", len(rows))


def _log_trained(
    round_id: int, stage: Stage, version_id: str, mix: TrainingRows, result: TrainResult
) -> None:
    """One line for the trained candidate (which loss, on which rows, how many of them
    replayed from earlier rounds when capped), and the stage's own summary line if it has
    one. Figures by flywheel/figures.py."""
    step_logger(__name__).info(
        "round %d %s stage trained %s on %s rows mined from the train battles%s in %s: %s",
        round_id,
        stage.name,
        version_id,
        count(len(mix.rows)),
        replay_text(mix),
        duration(result.wall_s),
        loss_text(stage, result),
    )
    if stage.describe is not None:
        step_logger(__name__).info("round %d %s", round_id, stage.describe(result.metrics))


def replay_text(mix: TrainingRows) -> str:
    """` (12 this round, 200 of 950 earlier by training.mining.replay_rows)` when the earlier
    rows were capped; empty otherwise."""
    if mix.replay_rows is None or mix.n_earlier_available == 0:
        return ""
    return (
        f" ({count(mix.n_this_round)} this round, {count(mix.n_earlier)} of "
        f"{count(mix.n_earlier_available)} earlier by training.mining.replay_rows)"
    )


def loss_text(stage: Stage, result: TrainResult) -> str:
    """`sft training loss 2.52 -> 1.31`; a stage that trains on prompts (RL) names its policy's
    loss and, when it trained them, its reward models' loss."""
    if not stage.trains_on_prompts:
        return f"{stage.name} training loss {_losses(result.first_loss, result.last_loss)}"
    text = f"RL policy loss {_losses(result.first_loss, result.last_loss)}"
    metrics = result.metrics
    if "rm_first_loss" in metrics or "rm_last_loss" in metrics:
        rm_losses = _losses(metrics.get("rm_first_loss"), metrics.get("rm_last_loss"))
        text += f"; reward model loss on the mined pairs {rm_losses}"
    return text


def _losses(first: float | None, last: float | None) -> str:
    return f"{measure(first)} -> {measure(last)} (first -> last step)"


def _record_candidate(
    config: Config,
    run: dict[str, Any],
    champion: ModelVersion,
    result: TrainResult,
    version_id: str,
    mix: TrainingRows,
) -> None:
    """The done training run (its settings, figures and row mix) and the candidate version it
    trained, in one transaction."""
    recorded = {**result.hyperparams, **result.metrics, **mix.recorded()}
    done = {
        **run,
        "output_version": version_id,
        "status": "done",
        "reason": "trained",
        "hyperparams": json.dumps(recorded, default=str),
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "wall_s": result.wall_s,
    }
    candidate = {
        "version_id": version_id,
        "parent_id": champion.version_id,
        "round_id": run["round_id"],
        "stage": run["stage"],
        "checkpoint_path": str(result.output_path),
        "status": "candidate",
        "training_run_id": run["run_id"],
    }
    record_training(config.warehouse, done, candidate=candidate)
