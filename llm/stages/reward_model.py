"""Reward models for the rm+rl stage (and the judge budget's selector, tasks/select.py): one
scalar reward model (TRL's RewardTrainer), or an ensemble on bootstrap resamples of the pairs.

Config `training.rm` (the shared settings, the ensemble's size and held-out share); rows are
preference pairs (`{"prompt", "chosen", "rejected"}`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.llm.stages import common
from flywheel.llm.stages.outputs import scratch_directory
from flywheel.llm.stages.settings import StageTrainingConfig, described
from flywheel.llm.stages.spec import TrainResult

if TYPE_CHECKING:
    from flywheel.llm import reward_ensemble as ens
    from flywheel.llm.stage_setup import StageSetup

SECTION = "rm"


class RewardModelConfig(StageTrainingConfig):
    """`training.rm`: the shared settings plus the reward-model ensemble's."""

    ensemble_size: int = described(
        "reward models fit on bootstrap resamples of the mined pairs; 1: one model on every "
        "pair (the RL reward is then the ensemble's normalised mean minus "
        "training.rl.disagreement_penalty x its spread across models)",
        default=1,
        ge=1,
        le=16,
    )
    heldout_fraction: float = described(
        "share of the mined reward-model pairs held out (seeded) to measure each model's and the "
        "ensemble's pair accuracy, recorded with the training run; 0: none held out",
        default=0.0,
        ge=0,
        lt=0.5,
    )


@common.quiet_progress_bars()
def train_reward_model(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: StageTrainingConfig,
    seed: int,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """A scalar reward model (sequence classifier, one label) initialised from `base_path`."""
    from trl import RewardConfig, RewardTrainer

    from flywheel.llm.stage_setup import StageSetup, common_args, peft_config

    setup = setup or StageSetup()
    common.require_rows(rows, SECTION)
    started = time.perf_counter()
    lora = peft_config(setup, base_path, task="SEQ_CLS")
    tokenizer, dataset, n_truncated = common.preference_inputs(
        base_path, rows, SECTION, cfg.max_length
    )
    with scratch_directory(out_path, SECTION) as scratch:
        args = RewardConfig(
            **common_args(cfg, seed, scratch, base_path, setup), max_length=cfg.max_length
        )
        trainer, figures, output = common.fit_and_save(
            RewardTrainer, args, base_path, dataset, tokenizer, lora, out_path, overwrite=True
        )
    accuracies = common.log_values(trainer.state.log_history, "accuracy")
    return common.stage_result(
        trainer,
        figures,
        output,
        len(rows),
        started,
        common.hyperparams(cfg, seed, setup, base_path, stage="rm"),
        n_truncated=n_truncated,
        last_accuracy=common.last(accuracies),
    )


@dataclass(frozen=True)
class EnsembleFit:
    """The reward models of the rm+rl stage, their score normalisers and pair accuracies."""

    members: list[TrainResult]
    normalisers: list[ens.Normaliser]
    metrics: dict[str, Any]


def member_path(rm_path: Path, member: int, ensemble_size: int) -> Path:
    """A single reward model is `rm_path` itself; an ensemble's members are its subfolders."""
    return rm_path if ensemble_size == 1 else rm_path / f"member-{member}"


def train_reward_ensemble(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    rm_path: Path,
    cfg: RewardModelConfig,
    seed: int,
    penalty: float,
    *,
    setup: StageSetup,
) -> EnsembleFit:
    """`cfg.ensemble_size` reward models on bootstrap resamples of the pairs left after a
    seeded held-out split; each model's scores standardised by its mean/std on the training
    pairs; each model's and the ensemble's (the RL reward's) pair accuracy measured."""
    from accelerate import PartialState

    from flywheel.llm import reward_ensemble as ens

    train_ids, heldout_ids = ens.heldout_split(len(rows), cfg.heldout_fraction, seed)
    train_rows, heldout_rows = [rows[i] for i in train_ids], [rows[i] for i in heldout_ids]
    k = cfg.ensemble_size
    samples = ens.bootstrap_indices(len(train_rows), k, seed)
    members = [
        train_reward_model(
            base_path,
            [train_rows[i] for i in sample],
            member_path(rm_path, member, k),
            cfg,
            seed + member,
            setup=setup,
        )
        for member, sample in enumerate(samples)
    ]
    PartialState().wait_for_everyone()  # rank 0 wrote the members
    models = ens.load_members([member_path(rm_path, m, k) for m in range(k)])
    tokenizer = common.load_tokenizer(base_path)
    train_scores = [_pair_scores(m, tokenizer, train_rows, cfg.max_length) for m in models]
    heldout_scores = [_pair_scores(m, tokenizer, heldout_rows, cfg.max_length) for m in models]
    normalisers = [ens.Normaliser.fit(chosen + rejected) for chosen, rejected in train_scores]
    metrics = {
        "rm_ensemble_size": k,
        "rm_heldout_fraction": cfg.heldout_fraction,
        "rm_n_train_pairs": len(train_rows),
        "rm_n_heldout_pairs": len(heldout_rows),
        "rm_member_n_unique_pairs": [len(set(sample)) for sample in samples],
        "rm_member_last_loss": [m.last_loss for m in members],
        "rm_member_train_accuracy": [ens.pair_accuracy(c, r) for c, r in train_scores],
        "rm_ensemble_train_accuracy": _ensemble_accuracy(train_scores, normalisers, penalty),
        "rm_member_heldout_accuracy": [
            ens.pair_accuracy(c, r) if heldout_rows else None for c, r in heldout_scores
        ],
        "rm_ensemble_heldout_accuracy": (
            _ensemble_accuracy(heldout_scores, normalisers, penalty) if heldout_rows else None
        ),
        "rm_wall_s_all_members": sum(m.wall_s for m in members),
    }
    return EnsembleFit(members, normalisers, metrics)


def _pair_scores(
    model: Any, tokenizer: Any, rows: list[dict[str, Any]], max_length: int
) -> tuple[list[float], list[float]]:
    """A reward model's scores of each pair's chosen and rejected conversation."""
    from flywheel.llm import reward_ensemble as ens

    chosen, rejected = ens.pair_conversations(rows)
    return (
        ens.score(model, tokenizer, chosen, max_length),
        ens.score(model, tokenizer, rejected, max_length),
    )


def _ensemble_accuracy(
    scores: list[tuple[list[float], list[float]]],
    normalisers: list[ens.Normaliser],
    penalty: float,
) -> float:
    """Pair accuracy of the combined reward (the one RL optimises)."""
    import numpy as np

    from flywheel.llm import reward_ensemble as ens

    chosen = np.stack([n.apply(c) for n, (c, _) in zip(normalisers, scores, strict=True)])
    rejected = np.stack([n.apply(r) for n, (_, r) in zip(normalisers, scores, strict=True)])
    return ens.pair_accuracy(ens.combine(chosen, penalty)[0], ens.combine(rejected, penalty)[0])
