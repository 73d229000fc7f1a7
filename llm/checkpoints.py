"""Local checkpoints: atomic save and publish, load, CPU threads, batched generation.

Nothing here downloads anything. A checkpoint is a plain Hugging Face directory (config.json,
model.safetensors, tokenizer files with the chat template) that `AutoModelForCausalLM` and
`AutoTokenizer.from_pretrained` load. Checkpoints are written through a temporary directory next
to the target and renamed into place only when complete, so a crash never leaves a half-written
model at the target path.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from flywheel.errors import InputError

CHECKPOINT_FILES = ("config.json", "model.safetensors")
Device = Literal["auto", "cpu", "cuda"]
FinishReason = Literal["stop", "length"]


def n_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    path: str | Path,
    overwrite: bool = False,
) -> Path:
    """Write model + tokenizer (safetensors) to `path`, atomically.

    Everything is written to a hidden temporary directory beside `path` and renamed into place
    only once complete; on any error the temporary directory is removed and `path` is untouched.
    An existing `path` raises FileExistsError unless `overwrite`, in which case the old checkpoint
    is moved aside, the new one renamed in, and the old one deleted (`path` is never half-written;
    between the two renames it is briefly absent).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"checkpoint {target} already exists; pass overwrite=True to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        publish_checkpoint(staging, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def publish_checkpoint(staging: str | Path, path: str | Path, overwrite: bool = False) -> Path:
    """Rename the complete checkpoint `staging` to `path` (same filesystem), replacing it if asked.

    `staging` must hold a complete checkpoint (else FileNotFoundError and nothing moves).
    """
    source, target = Path(staging), Path(path)
    _require_checkpoint(source)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"checkpoint {target} already exists; pass overwrite=True to replace it"
        )
    if target.exists():
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, retired)
        os.replace(source, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(source, target)
    return target


def is_checkpoint(path: str | Path) -> bool:
    """True when `path` holds a complete model checkpoint (config and safetensors weights)."""
    return all((Path(path) / name).is_file() for name in CHECKPOINT_FILES)


def _require_checkpoint(path: Path) -> None:
    missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is not a model checkpoint: missing {', '.join(missing)}. Fix: point at a "
            "directory written by save_pretrained (or build the sandbox student with `flywheel init`)."
        )


DEFAULT_CPU_THREADS = min(4, os.cpu_count() or 1)
_configured_cpu_threads: int | None = None


def configure_cpu_threads(n_threads: int) -> None:
    """Use `n_threads` (the `training.cpu_threads` setting) for CPU training and generation."""
    global _configured_cpu_threads
    _configured_cpu_threads = n_threads


def cpu_threads() -> int:
    """Torch threads for CPU work: `OMP_NUM_THREADS` when set, else the configured count (up to 4
    by default). Never derived from the machine's load: the thread count changes floating-point
    reduction order, so a load-dependent count made training irreproducible."""
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return _configured_cpu_threads or DEFAULT_CPU_THREADS


def use_cpu_threads() -> int:
    """Set torch's intra-op threads to `cpu_threads()` and return the number chosen."""
    n_threads = cpu_threads()
    torch.set_num_threads(n_threads)
    return n_threads


def pick_device(preference: str = "auto") -> str:
    """`cuda` when asked for or when `auto` and a GPU is present, else `cpu`."""
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was requested but no GPU is available; use 'auto' or 'cpu'"
        )
    return preference


def load_checkpoint(
    path: str | Path, device: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from `path` in eval mode on `device` (bf16 on GPU)."""
    checkpoint = Path(path)
    _require_checkpoint(checkpoint)
    target_device = pick_device(device)
    dtype = torch.bfloat16 if target_device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).to(target_device)
    tokenizer = chat_tokenizer(checkpoint)
    model.eval()
    return model, tokenizer


def chat_tokenizer(checkpoint: Path) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, which must have a chat template; with no pad token it pads
    with its end-of-sequence token (the usual choice for decoder-only models)."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if tokenizer.chat_template is None:
        raise InputError(
            f"checkpoint {checkpoint}: its tokenizer has no chat template, so prompts cannot be "
            "rendered as conversations. Fix: use a chat-tuned checkpoint, or add a "
            f"`chat_template` to {checkpoint / 'tokenizer_config.json'}."
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InputError(
                f"checkpoint {checkpoint}: its tokenizer has neither a pad nor an end-of-sequence "
                f"token. Fix: set `pad_token` in {checkpoint / 'tokenizer_config.json'}."
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass(frozen=True)
class GeneratedAnswer:
    """One generated reply: text without special tokens, tokens generated, and why it stopped."""

    text: str
    n_tokens: int
    finish_reason: FinishReason


def generate_answers(
    model_path: str | Path,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    device: str = "auto",
) -> list[GeneratedAnswer]:
    """Answer each conversation with the checkpoint at `model_path`, in the order given.

    Prompts are rendered with the chat template (generation prompt added), sorted by length and
    batched with left padding. Greedy decoding is deterministic; sampling is seeded by `seed`.
    `n_tokens` counts generated tokens up to and excluding the end-of-turn token.
    """
    if not conversations:
        return []
    model, tokenizer = load_checkpoint(model_path, device)
    if model.device.type == "cpu":
        use_cpu_threads()
    tokenizer.padding_side = "left"
    prompts = [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
    answers: list[GeneratedAnswer | None] = [None] * len(encoded)
    torch.manual_seed(seed)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch_ids = order[start : start + batch_size]
            batch = tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch_ids]}, padding=True, return_tensors="pt"
            ).to(model.device)
            sampling: dict[str, Any] = (
                {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
                if do_sample
                else {"do_sample": False}
            )
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
            new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
            for i, tokens in zip(batch_ids, new_tokens, strict=True):
                answers[i] = _to_answer(tokens, tokenizer)
    return [a for a in answers if a is not None]


def _to_answer(tokens: list[int], tokenizer: PreTrainedTokenizerBase) -> GeneratedAnswer:
    """Cut generated ids at the first end-of-turn token and decode them."""
    eos_id = tokenizer.eos_token_id
    if eos_id in tokens:
        kept, reason = tokens[: tokens.index(eos_id)], "stop"
    else:
        kept, reason = tokens, "length"
    text = tokenizer.decode(kept, skip_special_tokens=True).strip()
    return GeneratedAnswer(text=text, n_tokens=len(kept), finish_reason=reason)
