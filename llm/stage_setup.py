"""What every training stage sets up before TRL runs: dtypes, TrainingArguments, LoRA, truncation.

dtypes: a checkpoint is trained and saved in its own dtype. On a GPU that supports bf16, a bf16
checkpoint loads and trains in bf16 (TRL's bf16 autocast; with LoRA, PEFT keeps the adapter in
fp32). Everywhere else the weights load as fp32 master weights, because CPU bf16 matmuls are slow
and bf16 optimizer updates lose small steps; the trained model is cast back to the source dtype
when saved, so a bf16 base gives a bf16 candidate of the same size.
"""

from __future__ import annotations

import json
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flywheel.config import LoraConfig
from flywheel.errors import InputError
from flywheel.llm.checkpoints import use_cpu_threads
from flywheel.llm.stages.settings import StageTrainingConfig

# TRL's GRPO asks for a deprecated attribute on every generation (TRL 1.16, transformers 5.23)
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F64": torch.float64,
}
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class StageSetup:
    """Settings shared by every stage (from `training`): LoRA when enabled, CPU threads."""

    lora: LoraConfig | None = None
    cpu_threads: int | None = None

    def describe(self) -> dict[str, Any]:
        """For `training_runs.hyperparams`."""
        return {
            "lora": self.lora.model_dump() if self.lora else None,
            "cpu_threads": self.cpu_threads,
        }


def checkpoint_dtype(path: str | Path) -> torch.dtype:
    """The dtype most of the checkpoint's floating-point weights are stored in (read from the
    safetensors header, no tensor loaded)."""
    weights = Path(path) / "model.safetensors"
    with weights.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    sizes: dict[str, int] = {}
    for name, entry in header.items():
        if name != "__metadata__" and entry["dtype"] in SAFETENSORS_DTYPES:
            start, end = entry["data_offsets"]
            sizes[entry["dtype"]] = sizes.get(entry["dtype"], 0) + end - start
    if not sizes:
        return torch.float32
    return SAFETENSORS_DTYPES[max(sizes, key=lambda k: sizes[k])]


def training_dtype(source: torch.dtype, on_gpu: bool, bf16_supported: bool) -> torch.dtype:
    """bf16 stays bf16 on a GPU that supports it; everything else trains on fp32 master weights."""
    if on_gpu and bf16_supported and source == torch.bfloat16:
        return torch.bfloat16
    return torch.float32


def device_args(setup: StageSetup) -> dict[str, Any]:
    """fp32 on CPU (TRL's bf16 default fails there; a fixed thread count); bf16 autocast on a
    capable GPU."""
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        if setup.cpu_threads is not None:
            torch.set_num_threads(setup.cpu_threads)
        else:
            use_cpu_threads()
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    return {"use_cpu": not on_gpu, "bf16": bf16, "fp16": False}


def common_args(
    cfg: StageTrainingConfig, seed: int, scratch_dir: str, base_path: str | Path, setup: StageSetup
) -> dict[str, Any]:
    """TrainingArguments shared by every stage; the model loads in `training_dtype`."""
    on_gpu = torch.cuda.is_available()
    bf16_ok = on_gpu and torch.cuda.is_bf16_supported()
    dtype = training_dtype(checkpoint_dtype(base_path), on_gpu, bf16_ok)
    return {
        "output_dir": scratch_dir,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "activation_checkpointing": cfg.gradient_checkpointing,
        "seed": seed,
        "data_seed": seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "model_init_kwargs": {"dtype": dtype},
        **device_args(setup),
    }


def adaptable_modules(base_path: str | Path, for_classification: bool = False) -> list[str]:
    """Names (last dotted part) of the model's Linear/Embedding/Conv modules, built on the meta
    device from config.json (no weights read)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(base_path)
    auto = AutoModelForSequenceClassification if for_classification else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(config)
    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d)
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if name and (isinstance(module, kinds) or type(module).__name__ == "Conv1D")
    }
    return sorted(names)


def check_target_modules(base_path: str | Path, lora: LoraConfig) -> None:
    """Refuse, before training, LoRA target modules the model does not have."""
    if lora.target_modules == [ALL_LINEAR]:
        return
    available = adaptable_modules(base_path)
    missing = [m for m in lora.target_modules if m not in available]
    if missing:
        raise InputError(
            f"training.lora.target_modules: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not a module of {base_path}. Fix: choose from "
            f"{', '.join(available)}, or use [all-linear]."
        )


def peft_config(setup: StageSetup, base_path: str | Path, task: str = "CAUSAL_LM") -> Any:
    """PEFT's LoraConfig for the stage (None without LoRA). A reward model (task SEQ_CLS) also
    trains and saves its new `score` head."""
    if setup.lora is None:
        return None
    from peft import LoraConfig as PeftLoraConfig

    lora = setup.lora
    check_target_modules(base_path, lora)
    targets: str | list[str] = (
        ALL_LINEAR if lora.target_modules == [ALL_LINEAR] else list(lora.target_modules)
    )
    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type=task,
        modules_to_save=["score"] if task == "SEQ_CLS" else None,
    )


def count_truncated(tokenizer: Any, conversations: list[list[dict[str, str]]], limit: int) -> int:
    """How many conversations render (chat template) to more than `limit` tokens."""
    n = 0
    for messages in conversations:
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        if hasattr(ids, "keys"):  # a BatchEncoding in newer transformers
            ids = ids["input_ids"]
        n += len(ids) > limit
    return n
