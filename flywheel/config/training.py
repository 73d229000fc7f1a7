"""`training`: each stage's optimizer settings (`training.sft`, `.dpo`, `.rm`, `.rl`), LoRA,
the launcher, and the checks across them; mining rules are in `flywheel/config/mining.py`."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import field_problem
from flywheel.config.mining import MiningConfig


class StageTrainingConfig(Section):
    learning_rate: float = _help("optimizer learning rate", default=5e-4, gt=0)
    num_train_epochs: float = _help("passes over the mined examples", default=2.0, gt=0)
    max_steps: int = _help(
        "stop after this many steps; -1 means use num_train_epochs", default=-1, ge=-1
    )
    batch_size: int = _help("examples per device batch", default=16, gt=0)
    max_length: int = _help("tokens per training sequence", default=256, gt=0)
    min_examples: int = _help("fewer mined examples than this skips the stage", default=8, ge=1)
    beta: float = _help("DPO beta, or the KL coefficient to the champion for RL", default=0.1, ge=0)
    chosen_nll_weight: float = _help(
        "DPO only: weight of the NLL loss on chosen answers added to the DPO loss (RPO); 0: none",
        default=0.0,
        ge=0,
    )
    num_generations: int = _help("RL completions per prompt (GRPO group size)", default=4, ge=2)
    gradient_accumulation_steps: int = _help(
        "batches whose gradients are summed before each optimizer step", default=1, ge=1
    )
    gradient_checkpointing: bool = _help(
        "recompute activations in the backward pass (less memory, ~30% slower)", default=False
    )


class RewardModelTrainingConfig(StageTrainingConfig):
    """`training.rm`: a stage's settings plus the reward-model ensemble's."""

    ensemble_size: int = _help(
        "reward models fit on bootstrap resamples of the mined pairs; 1: one model on every "
        "pair (the RL reward is then the ensemble's normalised mean minus "
        "training.rl.disagreement_penalty x its spread across models)",
        default=1,
        ge=1,
        le=16,
    )
    heldout_fraction: float = _help(
        "share of the mined reward-model pairs held out (seeded) to measure each model's and the "
        "ensemble's pair accuracy, recorded with the training run; 0: none held out",
        default=0.0,
        ge=0,
        lt=0.5,
    )


class RLTrainingConfig(StageTrainingConfig):
    """`training.rl`: a stage's settings plus the ensemble reward's penalty and early stop."""

    disagreement_penalty: float = _help(
        "RL reward = the ensemble's normalised mean minus this x the ensemble's std across "
        "models (needs training.rm.ensemble_size >= 2 to have an effect)",
        default=0.0,
        ge=0,
    )
    early_stop_disagreement_factor: float | None = _help(
        "stop RL when the ensemble's disagreement on the policy's samples rises above this x "
        "its starting value (needs training.rm.ensemble_size >= 2); null: never",
        default=None,
        gt=1,
    )
    early_stop_window: int = _help(
        "batches averaged for the starting disagreement (the first ones) and the current one "
        "(the latest ones); one batch of completions is noisy",
        default=3,
        ge=1,
    )
    winrate_check_every: int = _help(
        "every this many RL steps (and once before RL), the policy answers `winrate_prompts` "
        "held-out prompts of the stage greedily and the judge compares them with the "
        "champion's answers, both orders; RL stops when the win rate falls more than "
        "`winrate_drop` below the best seen; 0: never (in-process launcher only)",
        default=0,
        ge=0,
    )
    winrate_prompts: int = _help(
        "prompts of the stage's slice held out of RL for the win-rate check (seeded; RL "
        "trains on the rest)",
        default=32,
        ge=1,
    )
    winrate_drop: float = _help(
        "stop RL when the judged win rate falls more than this below the best win rate seen "
        "(the first check, before RL, is the champion against itself: 0.5)",
        default=0.1,
        gt=0,
        le=1,
    )
    winrate_keep_best: bool = _help(
        "when the win-rate check stops RL, publish the policy of the best check instead of the "
        "one at the stop (keeps one CPU copy of the trainable weights of the best check)",
        default=True,
    )
    verifiable_reward_weight: float = _help(
        "w in RL reward = (1 - w) x reward model + w x checker, for prompts a skill checker "
        "can check (the checker's right/wrong as +1/-1, one std of the reward model's "
        "standardised scores); prompts without a checker get the reward model alone; 0: off "
        "(real data has no checker)",
        default=0.0,
        ge=0,
        le=1,
    )


def default_cpu_threads() -> int:
    """A fixed thread count (never load-dependent, so training is reproducible): up to 4."""
    return min(4, os.cpu_count() or 1)


class LoraConfig(Section):
    enabled: bool = _help(
        "train a LoRA adapter (PEFT) instead of every weight; the candidate is saved merged "
        "into a full checkpoint, with the adapter beside it in `adapter/`",
        default=False,
    )
    r: int = _help("LoRA rank", default=16, gt=0)
    alpha: int = _help("LoRA alpha (the update is scaled by alpha / r)", default=32, gt=0)
    dropout: float = _help("dropout on the LoRA input", default=0.05, ge=0, lt=1)
    target_modules: list[str] = _help(
        "module names to adapt (e.g. q_proj, v_proj), or [all-linear]; checked against the "
        "model before training",
        default_factory=lambda: ["all-linear"],
        min_length=1,
    )


class TrainingConfig(Section):
    output_dir: str = _help(
        "where candidate checkpoints are written", default="runs/demo/models", min_length=1
    )
    seed: int = _help("training seed", default=0)
    sft: StageTrainingConfig = Field(default_factory=StageTrainingConfig)
    dpo: StageTrainingConfig = Field(
        default_factory=lambda: StageTrainingConfig(learning_rate=5e-5, beta=0.1)
    )
    rm: RewardModelTrainingConfig = Field(
        default_factory=lambda: RewardModelTrainingConfig(learning_rate=1e-4)
    )
    rl: RLTrainingConfig = Field(
        default_factory=lambda: RLTrainingConfig(learning_rate=2e-5, beta=0.05)
    )
    mining: MiningConfig = Field(default_factory=MiningConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    launcher: Literal["in_process", "accelerate"] = _help(
        "in_process trains inside `flywheel run`; accelerate runs each stage as "
        "`accelerate launch --num_processes N -m flywheel.llm.stage_entry` and waits for it",
        default="in_process",
    )
    num_processes: int = _help(
        "accelerate launcher: training processes (at most one per GPU; on CPU, gloo)",
        default=1,
        gt=0,
    )
    accelerate_config_file: str | None = _help(
        "accelerate launcher: `--config_file` (YAML/JSON; DeepSpeed ZeRO or FSDP go here)",
        default=None,
    )
    keep_rejected: int | None = _help(
        "keep the checkpoints of the last K rejected candidates (champions are always kept) "
        "and delete older ones after each round; null keeps every checkpoint",
        default=None,
        ge=0,
    )
    cpu_threads: int = _help(
        "torch CPU threads for training and local generation (fixed, for reproducible "
        "results; OMP_NUM_THREADS overrides it)",
        default_factory=default_cpu_threads,
        gt=0,
    )

    @model_validator(mode="after")
    def _check_launcher_file(self) -> TrainingConfig:
        if self.accelerate_config_file is not None and self.launcher != "accelerate":
            raise field_problem(
                "is set but training.launcher is not accelerate",
                "set training.launcher: accelerate, or remove accelerate_config_file",
                field="accelerate_config_file",
                value=self.accelerate_config_file,
            )
        return self

    @model_validator(mode="after")
    def _check_ensemble_early_stop(self) -> TrainingConfig:
        if self.rl.early_stop_disagreement_factor is not None and self.rm.ensemble_size < 2:
            raise field_problem(
                "needs an ensemble: one reward model never disagrees with itself",
                "set training.rm.ensemble_size to 2 or more, or remove "
                "rl.early_stop_disagreement_factor",
                field="rl.early_stop_disagreement_factor",
                value=self.rl.early_stop_disagreement_factor,
            )
        return self

    @model_validator(mode="after")
    def _check_winrate_launcher(self) -> TrainingConfig:
        """The win-rate check calls the judge and stores its calls in the warehouse from the
        training process; `accelerate launch` ranks have neither (refused before the run)."""
        if self.rl.winrate_check_every > 0 and self.launcher != "in_process":
            raise field_problem(
                "needs training.launcher: in_process (the check calls the judge and writes "
                "its calls to the warehouse from the training process; accelerate's rank "
                "processes do neither)",
                "set training.launcher: in_process, or rl.winrate_check_every: 0",
                field="rl.winrate_check_every",
                value=self.rl.winrate_check_every,
            )
        return self

    @model_validator(mode="after")
    def _check_rl_groups(self) -> TrainingConfig:
        """TRL's GRPO rule: the generation batch (per_device_train_batch_size x processes x
        steps_per_generation; llm/trainers.py leaves one step per generation, so `rl.batch_size`
        completions per process) holds whole groups of `num_generations` completions."""
        batch_size, group_size = self.rl.batch_size, self.rl.num_generations
        if batch_size % group_size == 0:
            return self
        divisors = [str(n) for n in range(2, batch_size + 1) if batch_size % n == 0][:8]
        next_multiple = -(-batch_size // group_size) * group_size
        larger = f"training.rl.batch_size to a multiple of {group_size}, such as {next_multiple}"
        raise field_problem(
            f"GRPO's generation batch (training.rl.batch_size = {batch_size} completions) must "
            f"hold whole groups of {group_size} completions per prompt, and {batch_size} is not "
            f"a multiple of {group_size}",
            f"set training.rl.num_generations to a divisor of {batch_size} "
            f"({', '.join(divisors)}), or {larger}"
            if divisors
            else f"set {larger}",
            field="rl.num_generations",
            value=group_size,
        )
