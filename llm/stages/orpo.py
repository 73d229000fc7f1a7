"""The ORPO stage: odds-ratio preference optimisation on the mined DPO pairs (TRL's
experimental ORPOTrainer): the chosen answers' NLL plus `beta` x the log odds ratio of chosen
over rejected, with no reference model (no second copy, no reference log-probs).

Config `training.orpo` (the shared settings and `beta`); rows are the DPO stage's
(`preference_pairs` of kind dpo, `v_dpo_pairs`): ORPO mines nothing of its own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.llm.stages import common
from flywheel.llm.stages.dpo import DPO_DATA
from flywheel.llm.stages.outputs import scratch_directory
from flywheel.llm.stages.settings import StageTrainingConfig, described
from flywheel.llm.stages.spec import Stage, StageRun, TrainResult

if TYPE_CHECKING:
    from flywheel.llm.stage_setup import StageSetup

SECTION = "orpo"


class OrpoConfig(StageTrainingConfig):
    """`training.orpo`: the shared settings and ORPO's odds-ratio weight."""

    beta: float = described(
        "ORPO's lambda: the weight of the odds-ratio term added to the chosen answers' NLL "
        "(larger: the rejected answers pushed down harder); 0 is refused (plain SFT)",
        default=0.1,
        ge=0,
    )


def check_training(training: Any) -> None:
    """ORPO with no odds-ratio term is SFT on the chosen answers: refused, naming the stages
    that do that."""
    from flywheel.config.checks import field_problem

    if training.orpo.beta == 0:
        raise field_problem(
            "ORPO without its odds-ratio term is supervised fine-tuning on the chosen answers "
            "(the rejected ones are never used)",
            "set training.orpo.beta above 0 (0.1 is TRL's default), or schedule the sft stage",
            field="orpo.beta",
            value=training.orpo.beta,
        )


def orpo_args(common_settings: dict[str, Any], cfg: OrpoConfig) -> dict[str, Any]:
    """ORPOConfig's arguments. ORPOTrainer loads a model named by path with
    `device_map="auto"` unless told otherwise, which spreads it over every GPU and breaks
    `accelerate launch` (each rank trains its own copy): the device map is switched off, and
    the Trainer places the model as for the other stages. ORPO keeps the pair columns itself
    (`remove_unused_columns` false, as TRL asks)."""
    model_init_kwargs = {**common_settings["model_init_kwargs"], "device_map": None}
    return {
        **common_settings,
        "model_init_kwargs": model_init_kwargs,
        "max_length": cfg.max_length,
        "beta": cfg.beta,
        "remove_unused_columns": False,
    }


@common.quiet_progress_bars()
def train_orpo(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: OrpoConfig,
    seed: int,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """ORPO on `{"prompt": [...], "chosen": [...], "rejected": [...]}` from the base, with no
    reference model."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from flywheel.llm.stage_setup import StageSetup, common_args, peft_config

    setup = setup or StageSetup()
    common.require_rows(rows, SECTION)
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    tokenizer, dataset, n_truncated = common.preference_inputs(
        base_path, rows, SECTION, cfg.max_length
    )
    with scratch_directory(out_path, SECTION) as scratch:
        settings = common_args(cfg, seed, scratch, base_path, setup)
        args = ORPOConfig(**orpo_args(settings, cfg))
        trainer, figures, output = common.fit_and_save(
            ORPOTrainer, args, base_path, dataset, tokenizer, lora, out_path
        )
    history = trainer.state.log_history
    return common.stage_result(
        trainer,
        figures,
        output,
        len(rows),
        started,
        common.hyperparams(cfg, seed, setup, base_path, stage="orpo", reference="none"),
        n_truncated=n_truncated,
        last_nll_loss=common.last(common.log_values(history, "nll_loss")),
        last_log_odds_ratio=common.last(common.log_values(history, "log_odds_ratio")),
        last_reward_accuracy=common.last(common.log_values(history, "rewards/accuracies")),
    )


def train(run: StageRun) -> TrainResult:
    """The round's ORPO stage."""
    cfg = run.settings[SECTION]
    return train_orpo(run.base_path, run.rows, run.out_path, cfg, run.seed, setup=run.setup)


STAGE = Stage(
    name="orpo",
    sections={SECTION: OrpoConfig},
    data=DPO_DATA,
    trains_on_prompts=False,
    train=train,
    check_training=check_training,
    absent_sections={SECTION: {"learning_rate": 5e-5}},
)
