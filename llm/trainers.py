"""The pure training stages on TRL's trainers: SFT, DPO, and reward model + RL (GRPO).

The stage functions (`train_sft`, `train_dpo`, `train_rm_rl`) are pure: they take rows and a
base checkpoint and return a `TrainResult`, touching no warehouse (the RL win-rate check's
judge, which the caller injects, stores its calls); `run_training_stage` of tasks/train.py
wires them to the round (mined rows in; training run and candidate recorded).
Each stage trains in a scratch directory and writes its output checkpoint with `save_trained`, which
renames it into place only when complete, so a stage that raises leaves nothing at `out_path`.

Our knobs are `StageTrainingConfig` and `StageSetup` (LoRA, CPU threads; see stage_setup.py for
dtypes); everything else is TRL's defaults, except no intermediate saves and a log line every
step. Trainer imports sit inside the functions (importing TRL costs ~4 s).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from flywheel.config import (
    Config,
    RewardModelTrainingConfig,
    RLTrainingConfig,
    StageTrainingConfig,
)
from flywheel.llm import reward_ensemble as ens
from flywheel.llm import winrate_stop as wr
from flywheel.llm.stage_setup import (
    StageSetup,
    checkpoint_dtype,
    common_args,
    count_truncated,
    peft_config,
)
from flywheel.llm.train_progress import progress_callbacks
from flywheel.llm.trained_checkpoint import save_trained
from flywheel.llm.verifiable_reward import checkable_share

RM_SUFFIX = "-rm"
SCRATCH_DIR = ".scratch"
ECHO_LOGS = False  # stage_entry.py sets it: under a launcher, TRL's log lines go to its log file


@dataclass(frozen=True)
class TrainResult:
    """What one training stage produced.

    `hyperparams` are the settings used (for `training_runs.hyperparams`); `metrics` holds
    stage-specific figures such as the reward model's loss and the RL reward.
    """

    output_path: Path
    n_examples: int
    first_loss: float | None
    last_loss: float | None
    wall_s: float
    hyperparams: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@contextmanager
def scratch_directory(out_path: str | Path, kind: str) -> Iterator[str]:
    """TRL's scratch directory, under `<output_dir>/.scratch` so a killed run's leftovers are
    found and removed by `remove_staging_dirs` (the system temp dir is shared by everyone);
    `.scratch` itself goes when the last stage using it is done."""
    root = Path(out_path).parent / SCRATCH_DIR
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f"flywheel-{kind}-", dir=root) as scratch:
            yield scratch
    finally:
        with contextlib.suppress(OSError):  # not empty: another stage is training
            root.rmdir()


def remove_staging_dirs(config: Config) -> list[Path]:
    """Delete what killed runs left in `training.output_dir`: hidden staging copies of
    checkpoints being published (`.<name>.tmp-*`, `.<name>.old-*`) and TRL scratch dirs.

    Call it only while holding the warehouse's run lock (no other run is writing there).
    """
    output_dir = Path(config.training.output_dir)
    if not output_dir.is_dir():
        return []
    leftovers = [
        path
        for pattern in (".*.tmp-*", ".*.old-*", SCRATCH_DIR)
        for path in output_dir.glob(pattern)
        if path.is_dir()
    ]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def reward_model_path(out_path: str | Path) -> Path:
    """Where `train_rm_rl` writes the reward model of the policy written to `out_path`."""
    out = Path(out_path)
    return out.with_name(out.name + RM_SUFFIX)


def _dpo_loss_args(cfg: StageTrainingConfig) -> dict[str, Any]:
    """Plain DPO (sigmoid loss), or DPO plus the chosen answers' NLL when chosen_nll_weight > 0."""
    if cfg.chosen_nll_weight == 0:
        return {"loss_type": ["sigmoid"]}
    return {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, cfg.chosen_nll_weight]}


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence datasets/transformers progress bars while a stage runs (logs stay in log_history)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets_was_on = datasets.is_progress_bar_enabled()
    hf_was_on = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_was_on:
            datasets.enable_progress_bars()
        if hf_was_on:
            hf_logging.enable_progress_bar()


def _fit_and_save(
    trainer_class: Any,
    args: Any,
    base_path: str | Path,
    dataset: Any,
    tokenizer: Any,
    lora: Any,
    out_path: str | Path,
    *,
    overwrite: bool = False,
) -> tuple[Any, dict[str, Any], Path]:
    """Train a TRL trainer from the base on `dataset` and save the candidate in the base's
    dtype: (trainer, figures, output path). The SFT, DPO and reward-model stages share it."""
    trainer = trainer_class(
        model=str(base_path),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
    )
    figures = _run(trainer)
    dtype = checkpoint_dtype(base_path)
    output = save_trained(trainer, tokenizer, out_path, dtype, overwrite=overwrite)
    return trainer, figures, output


def _run(trainer: Any) -> dict[str, Any]:
    """Train without echoing every log line to stdout (TRL's PrinterCallback).

    Returns the run's figures (read before saving, which merges a LoRA adapter away).
    Raises when no optimizer step ran (e.g. fewer examples than one batch needs), so an
    untrained copy of the base is never published as a candidate.
    """
    from transformers.trainer_callback import PrinterCallback

    if not ECHO_LOGS:
        trainer.remove_callback(PrinterCallback)
    for callback in progress_callbacks():  # steps and loss to the terminal (llm/train_progress.py)
        trainer.add_callback(callback)
    trainer.train()
    if trainer.state.global_step == 0:
        raise RuntimeError(
            f"{type(trainer).__name__} ran no optimizer step: the dataset gave no full batch "
            f"(batch size {trainer.args.per_device_train_batch_size}); give more examples"
        )
    return _run_figures(trainer)


def _hyperparams(
    cfg: StageTrainingConfig, seed: int, setup: StageSetup, base_path: str | Path, **extra: Any
) -> dict[str, Any]:
    return {
        **cfg.model_dump(),
        **setup.describe(),
        "seed": seed,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "checkpoint_dtype": str(checkpoint_dtype(base_path)).removeprefix("torch."),
        **extra,
    }


def _warn_truncated(stage: str, n_truncated: int, n_rows: int, max_length: int) -> None:
    if n_truncated:
        logging.getLogger(__name__).warning(
            "%s: %d of %d mined rows are longer than max_length %d tokens and are truncated "
            "(raise training.%s.max_length to keep them whole)",
            stage,
            n_truncated,
            n_rows,
            max_length,
            stage,
        )


def _sft_truncated(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> int:
    return count_truncated(tokenizer, [row["messages"] for row in rows], max_length)


def _pairs_truncated(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> int:
    """Pairs whose prompt plus chosen or rejected answer is longer than `max_length`."""
    chosen = [r["prompt"] + r["chosen"] for r in rows]
    rejected = [r["prompt"] + r["rejected"] for r in rows]
    too_long_chosen = _long_flags(tokenizer, chosen, max_length)
    too_long_rejected = _long_flags(tokenizer, rejected, max_length)
    return sum(a or b for a, b in zip(too_long_chosen, too_long_rejected, strict=True))


def _long_flags(tokenizer: Any, conversations: list[Any], max_length: int) -> list[bool]:
    return [count_truncated(tokenizer, [c], max_length) > 0 for c in conversations]


def _log_values(log_history: list[dict[str, Any]], key: str) -> list[float]:
    """Per-step values of `key` in a trainer's log history (the final summary line excluded)."""
    return [
        float(entry[key]) for entry in log_history if key in entry and "train_runtime" not in entry
    ]


def _preference_dataset(rows: list[dict[str, Any]]) -> Any:
    """TRL's conversational prompt/chosen/rejected dataset (DPO and reward model)."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    )


def _first_last(values: list[float]) -> tuple[float | None, float | None]:
    return (values[0], values[-1]) if values else (None, None)


def _require_rows(rows: list[Any], stage: str) -> None:
    if not rows:
        raise ValueError(
            f"{stage}: no training examples were given; the caller should skip the stage"
        )


def _load_tokenizer(base_path: str | Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _last(values: list[float]) -> float | None:
    return values[-1] if values else None


def _run_figures(trainer: Any) -> dict[str, Any]:
    """Steps, processes, TRL's train time, trainable parameters (all, or LoRA's) and (on a GPU)
    this process's peak GPU memory."""
    runtimes = [e["train_runtime"] for e in trainer.state.log_history if "train_runtime" in e]
    on_gpu = torch.cuda.is_available()
    return {
        "n_steps": trainer.state.global_step,
        "world_size": trainer.args.world_size,
        "train_runtime_s": float(runtimes[-1]) if runtimes else None,
        "n_trainable_parameters": sum(
            p.numel() for p in trainer.model.parameters() if p.requires_grad
        ),
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if on_gpu else None,
    }


def _stage_result(
    trainer: Any,
    figures: dict[str, Any],
    output: Path,
    n_examples: int,
    started: float,
    hyperparams: dict[str, Any],
    **metrics: Any,
) -> TrainResult:
    """What a finished trainer produced: its loss curve's ends, its steps and `metrics`."""
    first, last = _first_last(_log_values(trainer.state.log_history, "loss"))
    return TrainResult(
        output_path=output,
        n_examples=n_examples,
        first_loss=first,
        last_loss=last,
        wall_s=time.perf_counter() - started,
        hyperparams=hyperparams,
        metrics={**figures, **metrics},
    )


@_quiet_progress_bars()
def train_sft(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: StageTrainingConfig,
    seed: int,
    warmup_ratio: float = 0.0,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """Supervised fine-tuning on conversational rows `{"messages": [...]}` (loss on assistant turns).

    `warmup_ratio` is the share of steps with a linear learning-rate warmup (0 for fine-tuning;
    the sandbox student, trained from scratch, uses some).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    setup = setup or StageSetup()
    _require_rows(rows, "sft")
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    tokenizer = _load_tokenizer(base_path)
    n_truncated = _sft_truncated(tokenizer, rows, cfg.max_length)
    _warn_truncated("sft", n_truncated, len(rows), cfg.max_length)
    dataset = Dataset.from_list([{"messages": row["messages"]} for row in rows])
    with scratch_directory(out_path, "sft") as scratch:
        args = SFTConfig(
            **common_args(cfg, seed, scratch, base_path, setup),
            max_length=cfg.max_length,
            assistant_only_loss=True,
            packing=False,
            warmup_steps=warmup_ratio,
        )
        trainer, figures, output = _fit_and_save(
            SFTTrainer, args, base_path, dataset, tokenizer, lora, out_path
        )
    hyperparams = _hyperparams(
        cfg,
        seed,
        setup,
        base_path,
        stage="sft",
        assistant_only_loss=True,
        warmup_ratio=warmup_ratio,
    )
    return _stage_result(
        trainer, figures, output, len(rows), started, hyperparams, n_truncated=n_truncated
    )


@_quiet_progress_bars()
def train_dpo(
    base_path: str | Path,
    rows: list[dict[str, Any]],
    out_path: str | Path,
    cfg: StageTrainingConfig,
    seed: int,
    *,
    setup: StageSetup | None = None,
) -> TrainResult:
    """DPO on `{"prompt": [...], "chosen": [...], "rejected": [...]}`, the base as reference model.

    Without LoRA, TRL loads a frozen copy of the base as the reference; with LoRA the reference
    is the same model with its adapter switched off (no second copy).
    """
    from trl import DPOConfig, DPOTrainer

    setup = setup or StageSetup()
    _require_rows(rows, "dpo")
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    tokenizer = _load_tokenizer(base_path)
    n_truncated = _pairs_truncated(tokenizer, rows, cfg.max_length)
    _warn_truncated("dpo", n_truncated, len(rows), cfg.max_length)
    dataset = _preference_dataset(rows)
    with scratch_directory(out_path, "dpo") as scratch:
        args = DPOConfig(
            **common_args(cfg, seed, scratch, base_path, setup),
            max_length=cfg.max_length,
            beta=cfg.beta,
            **_dpo_loss_args(cfg),
        )
        trainer, figures, output = _fit_and_save(
            DPOTrainer, args, base_path, dataset, tokenizer, lora, out_path
        )
    history = trainer.state.log_history
    return _stage_result(
        trainer,
        figures,
        output,
        len(rows),
        started,
        _hyperparams(cfg, seed, setup, base_path, stage="dpo"),
        n_truncated=n_truncated,
        reference="adapter disabled" if lora is not None else "frozen copy of the base",
        last_reward_margin=_last(_log_values(history, "rewards/margins")),
        last_reward_accuracy=_last(_log_values(history, "rewards/accuracies")),
    )


@_quiet_progress_bars()
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

    setup = setup or StageSetup()
    _require_rows(rows, "rm")
    started = time.perf_counter()
    lora = peft_config(setup, base_path, task="SEQ_CLS")
    tokenizer = _load_tokenizer(base_path)
    n_truncated = _pairs_truncated(tokenizer, rows, cfg.max_length)
    _warn_truncated("rm", n_truncated, len(rows), cfg.max_length)
    dataset = _preference_dataset(rows)
    with scratch_directory(out_path, "rm") as scratch:
        args = RewardConfig(
            **common_args(cfg, seed, scratch, base_path, setup), max_length=cfg.max_length
        )
        trainer, figures, output = _fit_and_save(
            RewardTrainer, args, base_path, dataset, tokenizer, lora, out_path, overwrite=True
        )
    accuracies = _log_values(trainer.state.log_history, "accuracy")
    return _stage_result(
        trainer,
        figures,
        output,
        len(rows),
        started,
        _hyperparams(cfg, seed, setup, base_path, stage="rm"),
        n_truncated=n_truncated,
        last_accuracy=_last(accuracies),
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
    cfg: RewardModelTrainingConfig,
    seed: int,
    penalty: float,
    *,
    setup: StageSetup,
) -> EnsembleFit:
    """`cfg.ensemble_size` reward models on bootstrap resamples of the pairs left after a
    seeded held-out split; each model's scores standardised by its mean/std on the training
    pairs; each model's and the ensemble's (the RL reward's) pair accuracy measured."""
    from accelerate import PartialState

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
    tokenizer = _load_tokenizer(base_path)
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
    chosen = np.stack([n.apply(c) for n, (c, _) in zip(normalisers, scores, strict=True)])
    rejected = np.stack([n.apply(r) for n, (_, r) in zip(normalisers, scores, strict=True)])
    return ens.pair_accuracy(ens.combine(chosen, penalty)[0], ens.combine(rejected, penalty)[0])


def _as_config(cls: type, cfg: StageTrainingConfig) -> Any:
    """`cfg` as the stage's own settings class (a plain StageTrainingConfig takes its defaults)."""
    return cfg if isinstance(cfg, cls) else cls(**cfg.model_dump())


@_quiet_progress_bars()
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
    winrate: wr.WinRateSetup | None = None,
) -> TrainResult:
    """Train a reward model (or an ensemble) on `rm_rows`, then optimise the base with GRPO.

    The reward model is written to `reward_model_path(out_path)` (`<out_path>-rm`; an
    ensemble's members to its `member-<i>` subfolders); GRPO keeps a KL penalty `rl_cfg.beta`
    to the base (champion). One reward model with nothing held out is GRPO's reward as is; an
    ensemble (or a held-out split) gives `EnsembleReward`: the members' standardised mean minus
    `rl_cfg.disagreement_penalty` x their spread, with an early stop when the spread on the
    policy's samples rises above `rl_cfg.early_stop_disagreement_factor` x its starting value
    (each the mean of `rl_cfg.early_stop_window` batches).
    With `rl_cfg.winrate_check_every` > 0, `winrate` gives the judge and the held-out prompts
    (not among `prompts`) of the win-rate stop (llm/winrate_stop.py). With
    `rl_cfg.verifiable_reward_weight` > 0 the reward is always the standardised one
    (`EnsembleReward`, one model or more) mixed with the skill checker where a prompt has one
    (llm/verifiable_reward.py).
    `first_loss`/`last_loss` are GRPO's; the reward models' figures, the RL reward, the
    disagreement, the win-rate checks, the checker's share and the early stop are in `metrics`.
    If RL fails, the reward models written by this call are removed as well.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rm_cfg = _as_config(RewardModelTrainingConfig, rm_cfg)
    rl_cfg = _as_config(RLTrainingConfig, rl_cfg)
    setup = setup or StageSetup()
    _require_rows(prompts, "rl")
    if rl_cfg.winrate_check_every > 0 and winrate is None:
        raise ValueError(
            "training.rl.winrate_check_every is set but no judge and held-out prompts were "
            "given for the win-rate check (the caller passes `winrate`)"
        )
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    rm_path = reward_model_path(out_path)
    weight = rl_cfg.verifiable_reward_weight
    checkable = _warn_uncheckable(prompts, weight)
    single = rm_cfg.ensemble_size == 1 and rm_cfg.heldout_fraction == 0 and weight == 0
    try:
        fit = None
        if single:
            rm_result = train_reward_model(base_path, rm_rows, rm_path, rm_cfg, seed, setup=setup)
        else:
            penalty = rl_cfg.disagreement_penalty
            fit = train_reward_ensemble(
                base_path, rm_rows, rm_path, rm_cfg, seed, penalty, setup=setup
            )
            rm_result = fit.members[0]
        tokenizer = _load_tokenizer(base_path)
        reward = None if fit is None else _ensemble_reward(fit, rm_path, rm_cfg, rl_cfg, tokenizer)
        dataset = Dataset.from_list([{"prompt": p} for p in prompts])
        with scratch_directory(out_path, "rl") as scratch:
            args = GRPOConfig(
                **common_args(rl_cfg, seed, scratch, base_path, setup),
                beta=rl_cfg.beta,
                num_generations=rl_cfg.num_generations,
                max_completion_length=max_completion_tokens,
            )
            trainer = GRPOTrainer(
                model=str(base_path),
                reward_funcs=str(rm_path) if reward is None else reward,
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
                peft_config=lora,
            )
            stop = _early_stop(reward, rl_cfg)
            winrate_stop = _winrate_stop(winrate, rl_cfg, base_path, max_completion_tokens)
            for callback in (stop, winrate_stop):
                if callback is not None:
                    trainer.add_callback(callback)
            figures = _run(trainer)
            output = save_trained(trainer, tokenizer, out_path, checkpoint_dtype(base_path))
            history = trainer.state.log_history
    except BaseException:
        shutil.rmtree(rm_path, ignore_errors=True)
        raise
    first, last = _first_last(_log_values(history, "loss"))
    return TrainResult(
        output_path=output,
        n_examples=len(prompts),
        first_loss=first,
        last_loss=last,
        wall_s=time.perf_counter() - started,
        hyperparams={
            **_hyperparams(
                rl_cfg,
                seed,
                setup,
                base_path,
                stage="rm+rl",
                max_completion_tokens=max_completion_tokens,
            ),
            "rm": rm_result.hyperparams,
        },
        metrics={
            **_rm_rl_metrics(history, trainer.state.global_step, rm_result, rm_path),
            **(fit.metrics if fit is not None else {"rm_ensemble_size": 1}),
            **_disagreement_metrics(reward, stop),
            **_stop_metrics(stop, winrate_stop),
            **wr.winrate_metrics(
                winrate_stop, len(winrate.prompts) if winrate else 0, rl_cfg.winrate_check_every
            ),
            **_verifiable_metrics(reward, weight, checkable),
            **figures,
            "n_truncated": rm_result.metrics.get("n_truncated"),
        },
    )


def _ensemble_reward(
    fit: EnsembleFit,
    rm_path: Path,
    rm_cfg: RewardModelTrainingConfig,
    rl_cfg: RLTrainingConfig,
    tokenizer: Any,
) -> ens.EnsembleReward:
    k = rm_cfg.ensemble_size
    return ens.EnsembleReward(
        models=ens.load_members([member_path(rm_path, m, k) for m in range(k)]),
        normalisers=fit.normalisers,
        tokenizer=tokenizer,
        penalty=rl_cfg.disagreement_penalty,
        max_length=rm_cfg.max_length,
        verifiable_weight=rl_cfg.verifiable_reward_weight,
    )


def _early_stop(reward: ens.EnsembleReward | None, rl_cfg: RLTrainingConfig) -> Any:
    factor = rl_cfg.early_stop_disagreement_factor
    if reward is None or factor is None:
        return None
    return ens.disagreement_stop_callback(reward, factor, rl_cfg.early_stop_window)


def _winrate_stop(
    winrate: wr.WinRateSetup | None,
    rl_cfg: RLTrainingConfig,
    base_path: str | Path,
    max_completion_tokens: int,
) -> Any:
    if winrate is None or rl_cfg.winrate_check_every == 0:
        return None
    return wr.winrate_stop_callback(
        winrate.judge,
        winrate.prompts,
        _load_tokenizer(base_path),  # its own copy: generation pads on the left
        rl_cfg.winrate_check_every,
        rl_cfg.winrate_drop,
        max_completion_tokens,
        keep_best=rl_cfg.winrate_keep_best,
    )


def _disagreement_metrics(reward: ens.EnsembleReward | None, stop: Any) -> dict[str, Any]:
    """The ensemble's spread on the policy's samples."""
    history = reward.disagreement_history if reward is not None else []
    return {
        "rl_disagreement_first": history[0] if history else None,
        "rl_disagreement_last": history[-1] if history else None,
        "rl_disagreement_max": max(history) if history else None,
    }


def _stop_metrics(disagreement_stop: Any, winrate_stop: Any) -> dict[str, Any]:
    """Whether RL stopped early, and when, why and on which rule (the first that fired)."""
    fired = [
        (stop.stopped_at_step, rule, stop.reason)
        for rule, stop in (("disagreement", disagreement_stop), ("winrate", winrate_stop))
        if stop is not None and stop.reason is not None
    ]
    step, rule, reason = min(fired, key=lambda f: f[0]) if fired else (None, None, None)
    return {
        "rl_stopped_early": bool(fired),
        "rl_stop_step": step,
        "rl_stop_rule": rule,
        "rl_stop_reason": reason,
    }


def _warn_uncheckable(prompts: list[list[dict[str, str]]], weight: float) -> float | None:
    """The share of RL prompts a skill checker can check (None when the weight is 0); a
    warning when a verifiable weight is set and no prompt has a checker."""
    if weight == 0:
        return None
    share = checkable_share(prompts)
    if share == 0:
        logging.getLogger(__name__).warning(
            "training.rl.verifiable_reward_weight = %g but no RL prompt of this stage has a "
            "skill checker: the reward is the reward model's alone (set the weight to 0 for "
            "data without checkers)",
            weight,
        )
    return share


def _verifiable_metrics(
    reward: ens.EnsembleReward | None, weight: float, checkable: float | None
) -> dict[str, Any]:
    """The verifiable reward's weight, the share of prompts and of samples with a checker
    (this process's samples) and the checker's pass rate on the first and last batches."""
    if reward is None or weight == 0:
        return {"rl_verifiable_reward_weight": weight}
    passes = reward.checker_pass_history
    return {
        "rl_verifiable_reward_weight": weight,
        "rl_verifiable_prompt_share": checkable,
        "rl_verifiable_sample_share": (
            reward.n_checked / reward.n_samples if reward.n_samples else None
        ),
        "rl_checker_pass_first": passes[0] if passes else None,
        "rl_checker_pass_last": passes[-1] if passes else None,
    }


def _rm_rl_metrics(
    history: list[dict[str, Any]], n_steps: int, rm_result: TrainResult, rm_path: Path
) -> dict[str, Any]:
    """The reward model's figures and the RL reward and KL, for `TrainResult.metrics`."""
    rewards = _log_values(history, "reward")
    kls = _log_values(history, "kl")
    return {
        "n_steps": n_steps,
        "reward_model_path": str(rm_path),
        "rm_n_examples": rm_result.n_examples,
        "rm_first_loss": rm_result.first_loss,
        "rm_last_loss": rm_result.last_loss,
        "rm_last_accuracy": rm_result.metrics.get("last_accuracy"),
        "rm_wall_s": rm_result.wall_s,
        "rl_first_reward": rewards[0] if rewards else None,
        "rl_last_reward": rewards[-1] if rewards else None,
        "rl_last_kl": kls[-1] if kls else None,
    }
