"""The KTO stage: Kahneman-Tversky optimisation on unpaired answers labelled desirable or
undesirable (TRL's KTOTrainer), the champion as reference model.

Config `training.kto` (the shared settings, `beta`, `balance_labels`); rows
`{"prompt": [...], "completion": [...], "label": bool}` from `kto_examples` (`v_kto_data`):
every decisive battle labels its winner's answer desirable and its loser's undesirable, also
where the score gap is too small for a DPO pair (`warehouse/queries/mine_kto.sql`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.llm.stages import common
from flywheel.llm.stages.outputs import scratch_directory
from flywheel.llm.stages.settings import StageTrainingConfig, described
from flywheel.llm.stages.spec import DataKind, Stage, StageRun, TrainResult

if TYPE_CHECKING:
    from flywheel.llm.stage_setup import StageSetup

SECTION = "kto"
# TRL's advice (KTO paper, eq. 8): desirable_weight x n_desirable / (undesirable_weight x
# n_undesirable) in [1, 4/3]; the weights aim at the middle of that range
TARGET_WEIGHT_RATIO = 7 / 6


class KtoConfig(StageTrainingConfig):
    """`training.kto`: the shared settings, KTO's beta and how the two labels are weighted."""

    beta: float = described(
        "KTO beta: how far the policy may move from the champion (smaller: further)",
        default=0.1,
        gt=0,
    )
    balance_labels: bool = described(
        "weight the desirable and undesirable losses so that desirable_weight x n_desirable / "
        "(undesirable_weight x n_undesirable) is 7/6, inside TRL's advised [1, 4/3]; false: "
        "both weights 1",
        default=True,
    )


KTO_DATA = DataKind(
    name="kto",
    table="kto_examples",
    key=("source", "round_id", "prompt_id", "response_id"),
    mining_query="mine_kto",
    view="v_kto_data",
    columns=("prompt", "completion", "label"),
    first_gap=lambda mining: mining.kto_min_gap,
    later_gap=lambda mining: mining.kto_min_gap,
    every_round=False,
)


@dataclass(frozen=True)
class LabelWeights:
    """The weights of KTO's desirable and undesirable losses, and the counts they balance."""

    n_desirable: int
    n_undesirable: int
    desirable_weight: float
    undesirable_weight: float

    @property
    def ratio(self) -> float:
        """desirable_weight x n_desirable / (undesirable_weight x n_undesirable)."""
        desirable = self.desirable_weight * max(self.n_desirable, 1)
        return desirable / (self.undesirable_weight * max(self.n_undesirable, 1))

    def describe(self) -> dict[str, Any]:
        return {
            "n_desirable": self.n_desirable,
            "n_undesirable": self.n_undesirable,
            "desirable_weight": round(self.desirable_weight, 4),
            "undesirable_weight": round(self.undesirable_weight, 4),
            "label_weight_ratio": round(self.ratio, 4),
        }


def label_weights(labels: list[bool], balance: bool) -> LabelWeights:
    """Weights that put desirable_weight x n_desirable / (undesirable_weight x n_undesirable)
    at 7/6 (one weight stays 1: the more numerous side's is lowered, or the desirable side's
    raised); equal weights of 1 when `balance` is off. A missing label counts as one."""
    n_desirable = sum(labels)
    n_undesirable = len(labels) - n_desirable
    if not balance:
        return LabelWeights(n_desirable, n_undesirable, 1.0, 1.0)
    desirable, undesirable = max(n_desirable, 1), max(n_undesirable, 1)
    if desirable >= undesirable:
        weight = desirable / (undesirable * TARGET_WEIGHT_RATIO)
        return LabelWeights(n_desirable, n_undesirable, 1.0, weight)
    weight = TARGET_WEIGHT_RATIO * undesirable / desirable
    return LabelWeights(n_desirable, n_undesirable, weight, 1.0)


def check_training(training: Any) -> None:
    """KTO estimates its KL term from the other answers of the same batch (TRL refuses a
    batch of one): refused here, before a round is run."""
    from flywheel.config.checks import field_problem

    if training.kto.batch_size < 2:
        raise field_problem(
            "KTO estimates its KL term from the other answers of the same device batch, so "
            "it needs at least 2 examples per batch",
            "set training.kto.batch_size to 2 or more (use gradient_accumulation_steps to "
            "keep the effective batch)",
            field="kto.batch_size",
            value=training.kto.batch_size,
        )


def kto_dataset(rows: list[dict[str, Any]], seed: int) -> Any:
    """The rows in an order drawn from `seed`: TRL's KTO reads them in sequence (its KL term
    pairs each example with its batch neighbours), so the seed would otherwise change nothing."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])}
            for r in rows
        ]
    ).shuffle(seed=seed)


@common.quiet_progress_bars()
def train_kto(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: KtoConfig,
    seed: int,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """KTO on `{"prompt": [...], "completion": [...], "label": bool}`, the base as reference
    (with LoRA: the same model with its adapter switched off), the two labels' losses weighted
    by `label_weights`."""
    from trl import KTOConfig, KTOTrainer

    from flywheel.llm.stage_setup import StageSetup, common_args, count_truncated, peft_config

    setup = setup or StageSetup()
    common.require_rows(rows, SECTION)
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    tokenizer = common.load_tokenizer(base_path)
    conversations = [r["prompt"] + r["completion"] for r in rows]
    n_truncated = count_truncated(tokenizer, conversations, cfg.max_length)
    common.warn_truncated(SECTION, n_truncated, len(rows), cfg.max_length)
    weights = label_weights([bool(r["label"]) for r in rows], cfg.balance_labels)
    with scratch_directory(out_path, SECTION) as scratch:
        args = KTOConfig(
            **common_args(cfg, seed, scratch, base_path, setup),
            max_length=cfg.max_length,
            beta=cfg.beta,
            desirable_weight=weights.desirable_weight,
            undesirable_weight=weights.undesirable_weight,
        )
        trainer, figures, output = common.fit_and_save(
            KTOTrainer, args, base_path, kto_dataset(rows, seed), tokenizer, lora, out_path
        )
    history = trainer.state.log_history
    return common.stage_result(
        trainer,
        figures,
        output,
        len(rows),
        started,
        common.hyperparams(cfg, seed, setup, base_path, stage="kto", **weights.describe()),
        n_truncated=n_truncated,
        last_kl=common.last(common.log_values(history, "kl")),
        last_reward_margin=common.last(common.log_values(history, "rewards/margins")),
    )


def train(run: StageRun) -> TrainResult:
    """The round's KTO stage."""
    cfg = run.settings[SECTION]
    return train_kto(run.base_path, run.rows, run.out_path, cfg, run.seed, setup=run.setup)


STAGE = Stage(
    name="kto",
    sections={SECTION: KtoConfig},
    data=KTO_DATA,
    trains_on_prompts=False,
    train=train,
    check_training=check_training,
    absent_sections={SECTION: {"learning_rate": 5e-5}},
)
