"""A trained stage's output checkpoint: full weights in the base's dtype, plus the LoRA adapter.

A LoRA candidate is saved merged into a full checkpoint (evaluation, promotion and serving load
it like any other), with the adapter itself in `adapter/` beside it (for a backend that serves
adapters, such as vLLM with --enable-lora). Everything is written to a hidden staging directory
and renamed into place when complete; under a multi-process launcher only rank 0 writes.
"""

from __future__ import annotations

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
    """Write the trainer's model to `out_path` in `dtype` (merged, with `adapter/`, under LoRA)."""
    from accelerate.utils import is_peft_model

    target = Path(out_path)
    accelerator = trainer.accelerator
    model = accelerator.unwrap_model(trainer.model)
    if accelerator.is_main_process:
        if target.exists() and not overwrite:
            raise FileExistsError(
                f"checkpoint {target} already exists; pass overwrite=True to replace it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            if is_peft_model(model):
                model.save_pretrained(staging / ADAPTER_DIR)
                model = model.merge_and_unload()
            full = model.to(dtype)
            full.config.dtype = dtype
            full.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            publish_checkpoint(staging, target, overwrite=overwrite)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    accelerator.wait_for_everyone()
    return target
