"""The DPO stage: direct preference optimisation on the mined DPO pairs (TRL's DPOTrainer),
the champion as reference model.

Config `training.dpo` (the shared settings, `beta`, `chosen_nll_weight`, `reference`); rows
`{"prompt": [...], "chosen": [...], "rejected": [...]}` from `preference_pairs` of kind dpo
(`v_dpo_pairs`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flywheel.llm.stages import common
from flywheel.llm.stages.outputs import scratch_directory
from flywheel.llm.stages.settings import StageTrainingConfig, described
from flywheel.llm.stages.spec import DataKind, Stage, StageRun, TrainResult

if TYPE_CHECKING:
    from flywheel.llm.stage_setup import StageSetup

SECTION = "dpo"


class DpoConfig(StageTrainingConfig):
    """`training.dpo`: the shared settings, DPO's beta and the optional NLL term (RPO)."""

    beta: float = described(
        "DPO beta: how far the policy may move from the champion (smaller: further)",
        default=0.1,
        ge=0,
    )
    chosen_nll_weight: float = described(
        "weight of the NLL loss on chosen answers added to the DPO loss (RPO); 0: none",
        default=0.0,
        ge=0,
    )
    reference: Literal["copy", "precomputed"] = described(
        "copy: a frozen second copy of the base in memory while training; precomputed: the"
        " base's log-probs computed once before training, no second copy (ignored with LoRA:"
        " the reference is then the adapter switched off)",
        default="copy",
    )


REFERENCE_DESCRIPTIONS = {
    "lora": "adapter disabled",
    "copy": "frozen copy of the base",
    "precomputed": "log-probs precomputed from the base",
}


DPO_DATA = DataKind(
    name="dpo",
    table="preference_pairs",
    key=("kind", "round_id", "prompt_id"),
    mining_query="mine_pairs",
    view="v_dpo_pairs",
    columns=("prompt", "chosen", "rejected"),
    first_gap=lambda mining: mining.dpo_min_gap_first,
    every_round=True,
)


def _dpo_loss_args(cfg: DpoConfig) -> dict[str, Any]:
    """Plain DPO (sigmoid loss), or DPO plus the chosen answers' NLL when chosen_nll_weight > 0."""
    if cfg.chosen_nll_weight == 0:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, cfg.chosen_nll_weight]}


def _reference_kind(cfg: DpoConfig, lora: Any) -> str:
    """What the policy is compared with: the adapter switched off (LoRA), else `cfg.reference`."""
    return "lora" if lora is not None else cfg.reference


def _rows_in_scratch(dataset: Any, scratch: str) -> Any:
    """The rows as an Arrow file in `scratch`: the datasets library then writes its cache files
    (TRL's precomputed reference log-probs among them) beside it, removed with the scratch
    directory, instead of into the system temp directory."""
    from datasets import load_from_disk

    path = Path(scratch) / "rows"
    dataset.save_to_disk(str(path))
    return load_from_disk(str(path))


@common.quiet_progress_bars()
def train_dpo(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: DpoConfig,
    seed: int,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """DPO on `{"prompt": [...], "chosen": [...], "rejected": [...]}`, the base as reference model.

    Without LoRA, TRL loads a frozen copy of the base as the reference (`reference: copy`) or
    computes the base's log-probs of every row once before training and keeps no second model
    (`reference: precomputed`); with LoRA the reference is the same model with its adapter
    switched off (no second copy).
    """
    from trl import DPOConfig, DPOTrainer

    from flywheel.llm.stage_setup import StageSetup, common_args, peft_config

    setup = setup or StageSetup()
    common.require_rows(rows, SECTION)
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    tokenizer, dataset, n_truncated = common.preference_inputs(
        base_path, rows, SECTION, cfg.max_length
    )
    reference = _reference_kind(cfg, lora)
    with scratch_directory(out_path, SECTION) as scratch:
        if reference == "precomputed":
            dataset = _rows_in_scratch(dataset, scratch)
        args = DPOConfig(
            **common_args(cfg, seed, scratch, base_path, setup),
            max_length=cfg.max_length,
            beta=cfg.beta,
            precompute_ref_log_probs=reference == "precomputed",
            **_dpo_loss_args(cfg),
        )
        trainer, figures, output = common.fit_and_save(
            DPOTrainer, args, base_path, dataset, tokenizer, lora, out_path
        )
    history = trainer.state.log_history
    return common.stage_result(
        trainer,
        figures,
        output,
        len(rows),
        started,
        common.hyperparams(cfg, seed, setup, base_path, stage="dpo"),
        n_truncated=n_truncated,
        reference=REFERENCE_DESCRIPTIONS[reference],
        last_reward_margin=common.last(common.log_values(history, "rewards/margins")),
        last_reward_accuracy=common.last(common.log_values(history, "rewards/accuracies")),
    )


def train(run: StageRun) -> TrainResult:
    """The round's DPO stage."""
    cfg = run.settings[SECTION]
    return train_dpo(run.base_path, run.rows, run.out_path, cfg, run.seed, setup=run.setup)


STAGE = Stage(
    name="dpo",
    sections={SECTION: DpoConfig},
    data=DPO_DATA,
    trains_on_prompts=False,
    train=train,
    absent_sections={SECTION: {"learning_rate": 5e-5}},
)
