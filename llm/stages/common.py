"""What every stage shares around TRL: run a trainer and save the candidate in the base's dtype
(`fit_and_save`), the settings recorded with the run (`hyperparams`), truncation counts, values
from a trainer's log, and the stage's `TrainResult`.

torch, transformers and TRL are imported inside the functions (importing TRL costs ~4 s), so a
stage module can import this at its top and stay cheap for the config that imports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.llm.stages.spec import TrainResult

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from flywheel.llm.stage_setup import StageSetup

ECHO_LOGS = False  # stage_entry.py sets it: under a launcher, TRL's log lines go to its log file


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
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


def fit_and_save(
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
    from flywheel.llm.stage_setup import checkpoint_dtype
    from flywheel.llm.trained_checkpoint import save_trained

    trainer = trainer_class(
        model=str(base_path),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
    )
    figures = run_trainer(trainer)
    dtype = checkpoint_dtype(base_path)
    output = save_trained(trainer, tokenizer, out_path, dtype, overwrite=overwrite)
    return trainer, figures, output


def run_trainer(trainer: Any) -> dict[str, Any]:
    """Train without echoing every log line to stdout (TRL's PrinterCallback).

    Returns the run's figures (read before saving, which merges a LoRA adapter away).
    Raises when no optimizer step ran (e.g. fewer examples than one batch needs), so an
    untrained copy of the base is never published as a candidate.
    """
    from transformers.trainer_callback import PrinterCallback

    from flywheel.llm.train_progress import progress_callbacks

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
    return run_figures(trainer)


def hyperparams(
    cfg: Any, seed: int, setup: StageSetup, base_path: str | Path, **extra: Any
) -> dict[str, Any]:
    """The settings a stage ran with, for `training_runs.hyperparams`."""
    import torch

    from flywheel.llm.stage_setup import checkpoint_dtype

    return {
        **cfg.model_dump(),
        **setup.describe(),
        "seed": seed,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "checkpoint_dtype": str(checkpoint_dtype(base_path)).removeprefix("torch."),
        **extra,
    }


def warn_truncated(section: str, n_truncated: int, n_rows: int, max_length: int) -> None:
    if n_truncated:
        logging.getLogger(__name__).warning(
            "%s: %d of %d mined rows are longer than max_length %d tokens and are truncated "
            "(raise training.%s.max_length to keep them whole)",
            section,
            n_truncated,
            n_rows,
            max_length,
            section,
        )


def preference_inputs(
    base_path: str | Path, rows: list[dict[str, Any]], section: str, max_length: int
) -> tuple[PreTrainedTokenizerBase, Any, int]:
    """What a stage on preference pairs (DPO, reward model) trains with: the base's tokenizer,
    TRL's prompt/chosen/rejected dataset, and how many pairs `max_length` truncates (warned
    about once, naming `training.<section>.max_length`)."""
    tokenizer = load_tokenizer(base_path)
    n_truncated = _pairs_truncated(tokenizer, rows, max_length)
    warn_truncated(section, n_truncated, len(rows), max_length)
    return tokenizer, _preference_dataset(rows), n_truncated


def _pairs_truncated(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> int:
    """Pairs whose prompt plus chosen or rejected answer is longer than `max_length`."""
    chosen = [r["prompt"] + r["chosen"] for r in rows]
    rejected = [r["prompt"] + r["rejected"] for r in rows]
    too_long_chosen = _long_flags(tokenizer, chosen, max_length)
    too_long_rejected = _long_flags(tokenizer, rejected, max_length)
    return sum(a or b for a, b in zip(too_long_chosen, too_long_rejected, strict=True))


def _long_flags(tokenizer: Any, conversations: list[Any], max_length: int) -> list[bool]:
    from flywheel.llm.stage_setup import count_truncated

    return [count_truncated(tokenizer, [c], max_length) > 0 for c in conversations]


def log_values(log_history: list[dict[str, Any]], key: str) -> list[float]:
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


def first_last(values: list[float]) -> tuple[float | None, float | None]:
    return (values[0], values[-1]) if values else (None, None)


def last(values: list[float]) -> float | None:
    return values[-1] if values else None


def require_rows(rows: list[Any], section: str) -> None:
    if not rows:
        raise ValueError(
            f"{section}: no training examples were given; the caller should skip the stage"
        )


def load_tokenizer(base_path: str | Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def run_figures(trainer: Any) -> dict[str, Any]:
    """Steps, processes, TRL's train time, trainable parameters (all, or LoRA's) and (on a GPU)
    this process's peak GPU memory."""
    import torch

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


def stage_result(
    trainer: Any,
    figures: dict[str, Any],
    output: Path,
    n_examples: int,
    started: float,
    hyperparams: dict[str, Any],
    **metrics: Any,
) -> TrainResult:
    """What a finished trainer produced: its loss curve's ends, its steps and `metrics`."""
    first, final = first_last(log_values(trainer.state.log_history, "loss"))
    return TrainResult(
        output_path=output,
        n_examples=n_examples,
        first_loss=first,
        last_loss=final,
        wall_s=time.perf_counter() - started,
        hyperparams=hyperparams,
        metrics={**figures, **metrics},
    )
