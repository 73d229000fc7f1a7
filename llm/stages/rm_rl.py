"""The rm+rl stage: a reward model (or an ensemble) on the mined reward-model pairs, then the
policy optimised against it on the round's prompts with GRPO or RLOO (`training.rl.algorithm`),
the champion as KL anchor.

Config `training.rm` (reward_model.py) and `training.rl` (here); rows are `preference_pairs`
of kind rm (`v_rm_pairs`), mined on this stage's rounds only; the reward model is written
beside the candidate (`<candidate>-rm`). The RL figures are gathered in rl_metrics.py.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from flywheel.llm.stages import common
from flywheel.llm.stages import reward_model as rmod
from flywheel.llm.stages import rl_reward as rules
from flywheel.llm.stages.outputs import scratch_directory
from flywheel.llm.stages.rl_metrics import policy_metrics, reward_model_line
from flywheel.llm.stages.settings import StageTrainingConfig, described
from flywheel.llm.stages.spec import DataKind, Stage, StageRun, TrainResult

if TYPE_CHECKING:
    from flywheel.llm import reward_ensemble as ens
    from flywheel.llm.stage_setup import StageSetup
    from flywheel.llm.winrate_stop import WinRateSetup

RM_SUFFIX = "-rm"


class RLConfig(StageTrainingConfig):
    """`training.rl`: the RL algorithm, the shared settings, its KL and group size, the ensemble
    reward's penalty and early stop, the win-rate stop and the verifiable reward's weight."""

    algorithm: Literal["grpo", "rloo"] = described(
        "grpo: TRL's GRPOTrainer (advantage = reward minus the group's mean, over its std); "
        "rloo: TRL's RLOOTrainer (REINFORCE leave-one-out: reward minus the mean of the "
        "group's other completions); the same reward ensemble, stops and KL anchor",
        default="grpo",
    )
    beta: float = described("KL coefficient to the champion", default=0.1, ge=0)
    num_generations: int = described(
        "completions per prompt (the group GRPO and RLOO compare within)", default=4, ge=2
    )
    disagreement_penalty: float = described(
        "RL reward = the ensemble's normalised mean minus this x the ensemble's std across "
        "models (needs training.rm.ensemble_size >= 2 to have an effect)",
        default=0.0,
        ge=0,
    )
    early_stop_disagreement_factor: float | None = described(
        "stop RL when the ensemble's disagreement on the policy's samples rises above this x "
        "its starting value (needs training.rm.ensemble_size >= 2); null: never",
        default=None,
        gt=1,
    )
    early_stop_window: int = described(
        "batches averaged for the starting disagreement (the first ones) and the current one "
        "(the latest ones); one batch of completions is noisy",
        default=3,
        ge=1,
    )
    winrate_check_every: int = described(
        "every this many RL steps (and once before RL), the policy answers `winrate_prompts` "
        "held-out prompts of the stage greedily and the judge compares them with the "
        "champion's answers, both orders; RL stops when the win rate falls more than "
        "`winrate_drop` below the best seen; 0: never (in-process launcher only)",
        default=0,
        ge=0,
    )
    winrate_prompts: int = described(
        "prompts of the stage's slice held out of RL for the win-rate check (seeded; RL "
        "trains on the rest)",
        default=32,
        ge=1,
    )
    winrate_drop: float = described(
        "stop RL when the judged win rate falls more than this below the best win rate seen "
        "(the first check, before RL, is the champion against itself: 0.5)",
        default=0.1,
        gt=0,
        le=1,
    )
    winrate_keep_best: bool = described(
        "when the win-rate check stops RL, publish the policy of the best check instead of the "
        "one at the stop (keeps one CPU copy of the trainable weights of the best check)",
        default=True,
    )
    verifiable_reward_weight: float = described(
        "w in RL reward = (1 - w) x reward model + w x checker, for prompts a skill checker "
        "can check (the checker's right/wrong as +1/-1, one std of the reward model's "
        "standardised scores); prompts without a checker get the reward model alone; 0: off "
        "(real data has no checker)",
        default=0.0,
        ge=0,
        le=1,
    )

    @model_validator(mode="after")
    def _check_groups(self) -> RLConfig:
        """TRL's GRPO and RLOO rule: the generation batch (per_device_train_batch_size x
        processes x steps_per_generation; this stage leaves one step per generation, so
        `batch_size` completions per process) holds whole groups of `num_generations`."""
        from flywheel.config.checks import field_problem

        batch_size, group_size = self.batch_size, self.num_generations
        if batch_size % group_size == 0:
            return self
        divisors = [str(n) for n in range(2, batch_size + 1) if batch_size % n == 0][:8]
        next_multiple = -(-batch_size // group_size) * group_size
        larger = f"training.rl.batch_size to a multiple of {group_size}, such as {next_multiple}"
        raise field_problem(
            f"{self.algorithm.upper()}'s generation batch (training.rl.batch_size = {batch_size} completions) must "
            f"hold whole groups of {group_size} completions per prompt, and {batch_size} is not "
            f"a multiple of {group_size}",
            f"set training.rl.num_generations to a divisor of {batch_size} "
            f"({', '.join(divisors)}), or {larger}"
            if divisors
            else f"set {larger}",
            field="num_generations",
            value=group_size,
        )


RM_DATA = DataKind(
    name="rm",
    table="preference_pairs",
    key=("kind", "round_id", "prompt_id"),
    mining_query="mine_pairs",
    view="v_rm_pairs",
    columns=("prompt", "chosen", "rejected"),
    first_gap=lambda mining: mining.dpo_min_gap_first,
    every_round=False,
)


def reward_model_path(out_path: str | Path) -> Path:
    """Where `train_rm_rl` writes the reward model of the policy written to `out_path`."""
    out = Path(out_path)
    return out.with_name(out.name + RM_SUFFIX)


def check_training(training: Any) -> None:
    """The rules across `training.rm`, `training.rl` and the launcher (raised as config errors)."""
    from flywheel.config.checks import field_problem

    rm, rl = training.rm, training.rl
    if rl.early_stop_disagreement_factor is not None and rm.ensemble_size < 2:
        raise field_problem(
            "needs an ensemble: one reward model never disagrees with itself",
            "set training.rm.ensemble_size to 2 or more, or remove "
            "rl.early_stop_disagreement_factor",
            field="rl.early_stop_disagreement_factor",
            value=rl.early_stop_disagreement_factor,
        )
    # the win-rate check calls the judge and stores its calls in the warehouse from the
    # training process; `accelerate launch` ranks have neither (refused before the run)
    if rl.winrate_check_every > 0 and training.launcher != "in_process":
        raise field_problem(
            "needs training.launcher: in_process (the check calls the judge and writes "
            "its calls to the warehouse from the training process; accelerate's rank "
            "processes do neither)",
            "set training.launcher: in_process, or rl.winrate_check_every: 0",
            field="rl.winrate_check_every",
            value=rl.winrate_check_every,
        )


@dataclass(frozen=True)
class RmRlRun:
    """One rm+rl run's inputs, the settings as the stage's own classes."""

    base_path: str | Path
    prompts: list[list[dict[str, str]]]
    out_path: str | Path
    rm_cfg: rmod.RewardModelConfig
    rl_cfg: RLConfig
    seed: int
    setup: StageSetup
    max_completion_tokens: int
    winrate: WinRateSetup | None

    @property
    def rm_path(self) -> Path:
        return reward_model_path(self.out_path)


def rl_trainer_classes(algorithm: str) -> tuple[Any, Any]:
    """TRL's (config class, trainer class) for `training.rl.algorithm`: both take the same
    reward functions, group size, KL coefficient and completion length."""
    if algorithm == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        return RLOOConfig, RLOOTrainer
    from trl import GRPOConfig, GRPOTrainer

    return GRPOConfig, GRPOTrainer


@dataclass(frozen=True)
class PolicyFit:
    """What GRPO or RLOO produced, and the reward and stop rules it ran with."""

    output: Path
    history: list[dict[str, Any]]
    n_steps: int
    figures: dict[str, Any]
    reward: ens.EnsembleReward | None
    disagreement_stop: Any
    winrate_stop: Any


def _as_config(cls: type, cfg: StageTrainingConfig) -> Any:
    """`cfg` as the stage's own settings class (the shared settings take its defaults)."""
    return cfg if isinstance(cfg, cls) else cls(**cfg.model_dump())


@common.quiet_progress_bars()
def train_rm_rl(
    base_path: str | Path,
    rm_rows: list[dict[str, Any]],
    prompts: list[list[dict[str, str]]],
    out_path: str | Path,
    rm_cfg: StageTrainingConfig,
    rl_cfg: StageTrainingConfig,
    seed: int,
    max_completion_tokens: int = 48,
    *,
    setup: StageSetup | None = None,
    winrate: WinRateSetup | None = None,
) -> TrainResult:
    """Train a reward model (or an ensemble) on `rm_rows`, then optimise the base with GRPO or
    RLOO (`rl_cfg.algorithm`).

    The reward model is written to `reward_model_path(out_path)` (`<out_path>-rm`; an
    ensemble's members to its `member-<i>` subfolders); RL keeps a KL penalty `rl_cfg.beta`
    to the base (champion). One reward model with nothing held out is the RL reward as is; an
    ensemble (or a held-out split) gives `EnsembleReward`: the members' standardised mean minus
    `rl_cfg.disagreement_penalty` x their spread, with an early stop when the spread on the
    policy's samples rises above `rl_cfg.early_stop_disagreement_factor` x its starting value
    (each the mean of `rl_cfg.early_stop_window` batches).
    With `rl_cfg.winrate_check_every` > 0, `winrate` gives the judge and the held-out prompts
    (not among `prompts`) of the win-rate stop (llm/winrate_stop.py). With
    `rl_cfg.verifiable_reward_weight` > 0 the reward is always the standardised one
    (`EnsembleReward`, one model or more) mixed with the skill checker where a prompt has one
    (llm/verifiable_reward.py).
    `first_loss`/`last_loss` are the RL policy's; the reward models' figures, the RL reward, the
    disagreement, the win-rate checks, the checker's share and the early stop are in `metrics`.
    If RL fails, the reward models written by this call are removed as well.
    """
    from flywheel.llm.stage_setup import StageSetup, peft_config

    rm_settings = _as_config(rmod.RewardModelConfig, rm_cfg)
    rl_settings = _as_config(RLConfig, rl_cfg)
    setup = setup or StageSetup()
    run = RmRlRun(
        base_path, prompts, out_path, rm_settings, rl_settings, seed, setup,
        max_completion_tokens, winrate,
    )  # fmt: skip
    _check_inputs(run)
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    checkable = rules.warn_uncheckable(prompts, rl_settings.verifiable_reward_weight)
    try:
        rm_result, fit = _fit_reward_models(run, rm_rows)
        tokenizer = common.load_tokenizer(base_path)
        reward = None if fit is None else rules.ensemble_reward(fit, run, tokenizer)
        policy = _fit_policy(run, str(run.rm_path) if reward is None else reward, lora, tokenizer)
    except BaseException:
        shutil.rmtree(run.rm_path, ignore_errors=True)
        raise
    return _rm_rl_result(run, policy, rm_result, fit, started, checkable)


def _check_inputs(run: RmRlRun) -> None:
    common.require_rows(run.prompts, "rl")
    if run.rl_cfg.winrate_check_every > 0 and run.winrate is None:
        raise ValueError(
            "training.rl.winrate_check_every is set but no judge and held-out prompts were "
            "given for the win-rate check (the caller passes `winrate`)"
        )


def _fit_reward_models(
    run: RmRlRun, rm_rows: list[dict[str, Any]]
) -> tuple[TrainResult, rmod.EnsembleFit | None]:
    """One reward model used as is (nothing held out, no checker mixed in), or an ensemble
    whose standardised scores make the reward: (the first model's result, the ensemble)."""
    rm_cfg, rl_cfg = run.rm_cfg, run.rl_cfg
    single = rm_cfg.ensemble_size == 1 and rm_cfg.heldout_fraction == 0
    if single and rl_cfg.verifiable_reward_weight == 0:
        result = rmod.train_reward_model(
            run.base_path, rm_rows, run.rm_path, rm_cfg, run.seed, setup=run.setup
        )
        return result, None
    fit = rmod.train_reward_ensemble(
        run.base_path, rm_rows, run.rm_path, rm_cfg, run.seed, rl_cfg.disagreement_penalty,
        setup=run.setup,
    )  # fmt: skip
    return fit.members[0], fit


def _fit_policy(run: RmRlRun, reward: Any, lora: Any, tokenizer: Any) -> PolicyFit:
    """GRPO or RLOO (`rl.algorithm`) from the base on the prompts against `reward` (a
    reward-model path or an `EnsembleReward`), with the early stops; the policy saved in the
    base's dtype."""
    from datasets import Dataset

    from flywheel.llm.stage_setup import checkpoint_dtype, common_args
    from flywheel.llm.trained_checkpoint import save_trained

    rl_cfg, base_path = run.rl_cfg, run.base_path
    dataset = Dataset.from_list([{"prompt": p} for p in run.prompts])
    ensemble = None if isinstance(reward, str) else reward
    config_class, trainer_class = rl_trainer_classes(rl_cfg.algorithm)
    with scratch_directory(run.out_path, "rl") as scratch:
        args = config_class(
            **common_args(rl_cfg, run.seed, scratch, base_path, run.setup),
            beta=rl_cfg.beta,
            num_generations=rl_cfg.num_generations,
            max_completion_length=run.max_completion_tokens,
        )
        trainer = trainer_class(
            model=str(base_path),
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
        )
        stop = rules.early_stop(ensemble, rl_cfg)
        winrate_stop = rules.winrate_stop(run)
        for callback in (stop, winrate_stop):
            if callback is not None:
                trainer.add_callback(callback)
        figures = common.run_trainer(trainer)
        output = save_trained(trainer, tokenizer, run.out_path, checkpoint_dtype(base_path))
    history = trainer.state.log_history
    return PolicyFit(
        output, history, trainer.state.global_step, figures, ensemble, stop, winrate_stop
    )


def _rm_rl_result(
    run: RmRlRun,
    policy: PolicyFit,
    rm_result: TrainResult,
    fit: rmod.EnsembleFit | None,
    started: float,
    checkable: float | None,
) -> TrainResult:
    """The RL policy's loss curve, the settings (the reward model's under `rm`) and every figure."""
    first, final = common.first_last(common.log_values(policy.history, "loss"))
    hyperparams = common.hyperparams(
        run.rl_cfg,
        run.seed,
        run.setup,
        run.base_path,
        stage="rm+rl",
        max_completion_tokens=run.max_completion_tokens,
    )
    metrics = policy_metrics(
        policy, rm_result, fit, run.rm_path, run.rl_cfg, run.winrate, checkable
    )
    return TrainResult(
        output_path=policy.output,
        n_examples=len(run.prompts),
        first_loss=first,
        last_loss=final,
        wall_s=time.perf_counter() - started,
        hyperparams={**hyperparams, "rm": rm_result.hyperparams},
        metrics=metrics,
    )


def train(run: StageRun) -> TrainResult:
    """The round's rm+rl stage: the mined pairs train the reward models, the prompts RL."""
    return train_rm_rl(
        run.base_path,
        run.rows,
        run.prompts or [],
        run.out_path,
        run.settings[rmod.SECTION],
        run.settings["rl"],
        run.seed,
        max_completion_tokens=run.max_completion_tokens,
        setup=run.setup,
        winrate=run.winrate,
    )


STAGE = Stage(
    name="rm+rl",
    sections={rmod.SECTION: rmod.RewardModelConfig, "rl": RLConfig},
    data=RM_DATA,
    trains_on_prompts=True,
    train=train,
    side_outputs=lambda out_path: [reward_model_path(out_path)],
    describe=reward_model_line,
    check_training=check_training,
    absent_sections={
        rmod.SECTION: {"learning_rate": 1e-4},
        "rl": {"learning_rate": 2e-5, "beta": 0.05},
    },
)
