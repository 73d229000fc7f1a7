"""A trained stage's output checkpoint: full weights in the base's dtype, plus the LoRA adapter.

A LoRA candidate is saved merged into a full checkpoint (evaluation, promotion and serving load
it like any other), with the adapter itself in `adapter/` beside it (for a backend that serves
adapters, such as vLLM with --enable-lora). Everything is written to a hidden staging directory
and renamed into place when complete; under a multi-process launcher only rank 0 writes.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from flywheel.llm.checkpoints import publish_checkpoint

ADAPTER_DIR = "adapter"


def save_trained(
    trainer: Any, tokenizer: Any, out_path: str | Path, dtype: torch.dtype, overwrite: bool = False
) -> Path:
    """Write the trainer's model to `out_path` in `dtype` (merged, with `adapter/`, under LoRA).

    Under DeepSpeed or FSDP every rank takes part in gathering the full weights first (ZeRO-3
    needs `stage3_gather_16bit_weights_on_model_save: true`); rank 0 writes.
    """

    target = Path(out_path)
    accelerator = trainer.accelerator
    sharded = bool(getattr(trainer, "is_deepspeed_enabled", False)) or bool(
        getattr(trainer, "is_fsdp_enabled", False)
    )
    gathered = accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
    model = accelerator.unwrap_model(trainer.model)
    model.config.use_cache = True  # the Trainer turned it off for training; candidates generate
    if accelerator.is_main_process:
        if target.exists() and not overwrite:
            raise FileExistsError(
                f"checkpoint {target} already exists; pass overwrite=True to replace it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            if gathered is not None:
                _save_gathered(model, gathered, staging, dtype)
            else:
                _save_local(model, staging, dtype)
            tokenizer.save_pretrained(staging)
            publish_checkpoint(staging, target, overwrite=overwrite)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    accelerator.wait_for_everyone()
    return target


def _save_local(model: Any, staging: Path, dtype: torch.dtype) -> None:
    """The whole model is in this process: the adapter first, then the merged model in `dtype`."""
    from accelerate.utils import is_peft_model

    if is_peft_model(model):
        model.save_pretrained(staging / ADAPTER_DIR)
        model = model.merge_and_unload()
    full = model.to(dtype)
    full.config.dtype = dtype
    full.save_pretrained(staging)


def _save_gathered(
    model: Any, state_dict: dict[str, Any], staging: Path, dtype: torch.dtype
) -> None:
    """Weights gathered from the shards, cast to `dtype` (launch_checks refuses LoRA here)."""
    from accelerate.utils import is_peft_model

    if is_peft_model(model):
        raise RuntimeError(
            "a LoRA adapter trained under ZeRO-3 or FSDP cannot be merged here. Fix: use ZeRO-2 "
            "or plain multi-GPU for LoRA, or turn training.lora off"
        )
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
    model.config.dtype = dtype
    model.save_pretrained(staging, state_dict=cast)
    config_path = staging / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = str(dtype).removeprefix("torch.")
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
