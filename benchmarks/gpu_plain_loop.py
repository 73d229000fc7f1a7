"""gpu_check.py's peer: a plain PyTorch training loop (fused AdamW, no weight decay, grad-norm
clip 1.0, bf16 autocast on a GPU that has it) over the same rows as flywheel's SFT and DPO stages,
with the stage's model dtype and LoRA adapter; and the device helpers both sides use."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def on_gpu() -> bool:
    return torch.cuda.is_available()


def free_memory() -> None:
    """Drop what the last part left and restart the peak-memory count."""
    gc.collect()
    if on_gpu():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> int | None:
    return torch.cuda.max_memory_allocated() if on_gpu() else None


def stage_setup(lora: bool) -> Any:
    from flywheel.config import LoraConfig
    from flywheel.llm.stage_setup import StageSetup

    return StageSetup(lora=LoraConfig(enabled=True, r=16, alpha=32) if lora else None)


def rendered(tokenizer: Any, messages: list[dict[str, str]]) -> dict[str, list[int]]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return {"input_ids": list(out["input_ids"]), "answer_mask": list(out["assistant_masks"])}


def plain_batches(
    tokenizer: Any, stage: str, rows: list[dict[str, Any]], batch: int
) -> list[dict[str, torch.Tensor]]:
    """The rows as tensors, `batch` rows a step: ids and a mask of the answer tokens (SFT: one
    sequence a row; DPO: the chosen sequences, then the rejected)."""
    device = "cuda" if on_gpu() else "cpu"
    if stage == "sft":
        sequences = [[rendered(tokenizer, r["messages"])] for r in rows]
    else:
        sequences = [
            [rendered(tokenizer, r["prompt"] + r[side]) for side in ("chosen", "rejected")]
            for r in rows
        ]
    batches = []
    for start in range(0, len(rows) - batch + 1, batch):
        chunk = sequences[start : start + batch]
        ordered = [seqs[k] for k in range(len(chunk[0])) for seqs in chunk]
        lengths = {len(s["input_ids"]) for s in ordered}
        if len(lengths) != 1:
            raise RuntimeError(f"rows render to different lengths {sorted(lengths)}")
        batches.append(
            {
                key: torch.tensor([s[key] for s in ordered], device=device)
                for key in ("input_ids", "answer_mask")
            }
        )
    return batches


def answer_logps(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probabilities of the answer tokens, one row at a time (memory like TRL's)."""
    sums = []
    for row_logits, row_ids, row_mask in zip(logits[:, :-1], ids[:, 1:], mask[:, 1:], strict=True):
        logps = row_logits.float().log_softmax(-1).gather(-1, row_ids[:, None]).squeeze(-1)
        sums.append((logps * row_mask).sum())
    return torch.stack(sums)


def load_plain_model(base: Path, lora: bool) -> tuple[Any, Any]:
    """The base as the stage loads it (its training dtype, which is returned too), with the
    stage's LoRA adapter when `lora`."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from flywheel.llm.checkpoints import use_cpu_threads
    from flywheel.llm.stage_setup import checkpoint_dtype, peft_config, training_dtype

    if not on_gpu():
        use_cpu_threads()
    bf16_ok = on_gpu() and torch.cuda.is_bf16_supported()
    dtype = training_dtype(checkpoint_dtype(base), on_gpu(), bf16_ok)
    device = "cuda" if on_gpu() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)
    if lora:
        model = get_peft_model(model, peft_config(stage_setup(True), base))
    model.train()
    return model, dtype


def plain_step(model: Any, reference: Any, stage: str, beta: float) -> Callable[[dict], Any]:
    """The loss of one batch: SFT's answer-token cross-entropy, or DPO's sigmoid loss."""

    def sft_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["input_ids"].masked_fill(batch["answer_mask"] == 0, -100)
        return model(input_ids=batch["input_ids"], labels=labels).loss

    def dpo_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["answer_mask"]
        policy = answer_logps(model(input_ids=ids).logits, ids, mask)
        with torch.no_grad():
            if reference is None:
                with model.disable_adapter():
                    ref = answer_logps(model(input_ids=ids).logits, ids, mask)
            else:
                ref = answer_logps(reference(input_ids=ids).logits, ids, mask)
        margin = (policy - ref).view(2, -1)
        return -torch.nn.functional.logsigmoid(beta * (margin[0] - margin[1])).mean()

    return sft_loss if stage == "sft" else dpo_loss


def run_plain(
    base: Path, stage: str, lora: bool, batches: list[dict], lr: float, budget_s: float
) -> dict[str, Any]:
    """The plain loop over `batches` until `budget_s` is spent: steps, seconds, peak memory."""
    free_memory()
    model, dtype = load_plain_model(base, lora)
    reference = None  # DPO's: a frozen copy of the base; with LoRA, the adapter switched off
    if stage == "dpo" and not lora:
        reference, _ = load_plain_model(base, False)
        reference.eval().requires_grad_(False)
    loss_of = plain_step(model, reference, stage, beta=0.1)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=on_gpu())
    use_autocast = on_gpu() and dtype is torch.bfloat16  # TRL's bf16=True on such a GPU
    started = time.perf_counter()
    n_steps, losses = 0, []
    for batch in batches:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
            loss = loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        n_steps += 1
        losses.append(loss.detach())
        if time.perf_counter() - started >= budget_s:
            break
    if on_gpu():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    figures = {
        "n_steps": n_steps,
        "seconds": seconds,
        "peak_gpu_memory_bytes": peak_memory(),
        "first_loss": float(losses[0]),
        "last_loss": float(losses[-1]),
    }
    del model, reference, optimizer, params, losses
    free_memory()
    return figures
