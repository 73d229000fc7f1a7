"""The pure training stages on TRL's trainers: SFT, DPO, and reward model + RL (GRPO).

The stage functions (`train_sft`, `train_dpo`, `train_rm_rl`) are pure: they take rows and a
base checkpoint and return a `TrainResult`, touching no warehouse; `run_training_stage` of
tasks/train.py wires them to the round (mined rows in; training run and candidate recorded).
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

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from flywheel.config import Config, StageTrainingConfig
from flywheel.llm.stage_setup import (
    StageSetup,
    checkpoint_dtype,
    common_args,
    count_truncated,
    peft_config,
)
from flywheel.llm.train_progress import progress_callbacks
from flywheel.llm.trained_checkpoint import save_trained

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
        trainer = SFTTrainer(
            model=str(base_path),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
        )
        figures = _run(trainer)
        output = save_trained(trainer, tokenizer, out_path, checkpoint_dtype(base_path))
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
        trainer = DPOTrainer(
            model=str(base_path),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
        )
        figures = _run(trainer)
        output = save_trained(trainer, tokenizer, out_path, checkpoint_dtype(base_path))
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
        trainer = RewardTrainer(
            model=str(base_path),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
        )
        figures = _run(trainer)
        output = save_trained(
            trainer, tokenizer, out_path, checkpoint_dtype(base_path), overwrite=True
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
) -> TrainResult:
    """Train a reward model on `rm_rows`, then optimise the base with GRPO against it.

    The reward model is written to `reward_model_path(out_path)` (`<out_path>-rm`); GRPO keeps a
    KL penalty `rl_cfg.beta` to the base (champion). `first_loss`/`last_loss` are GRPO's; the
    reward model's loss and accuracy and the RL reward are in `metrics`. If RL fails, the
    reward model written by this call is removed as well.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    setup = setup or StageSetup()
    _require_rows(prompts, "rl")
    started = time.perf_counter()
    lora = peft_config(setup, base_path)
    rm_path = reward_model_path(out_path)
    rm_result = train_reward_model(base_path, rm_rows, rm_path, rm_cfg, seed, setup=setup)
    try:
        tokenizer = _load_tokenizer(base_path)
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
                reward_funcs=str(rm_path),
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
                peft_config=lora,
            )
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
            **figures,
            "n_truncated": rm_result.metrics.get("n_truncated"),
        },
    )


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
