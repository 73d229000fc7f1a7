"""GPU figures in one run: bf16 training (SFT and DPO, full and LoRA) through flywheel's own stage
functions against a plain PyTorch loop, local batched generation, and the candidate's dtype/size.

1. Build a Qwen2-style model from a config (random weights, nothing downloaded): Qwen2.5-0.5B's
   shape (24 layers, hidden 896, 14 heads, 2 KV heads, vocabulary 151936, ~494M parameters)
   with a byte-level BPE tokenizer built here (sandbox/tiny_model.py's, chat template with
   `{% generation %}` markers). Saved in bf16 where the GPU supports it (`--dtype`).
2. For each of sft-full, sft-lora, dpo-full, dpo-lora: a plain PyTorch loop
   (gpu_plain_loop.py: fused AdamW, no weight decay, grad-norm clip 1.0, bf16 autocast, the
   model in the stage's training dtype) runs the rows' batches for at most `--budget-s`
   seconds; then the stage (`train_sft` / `train_dpo` with `StageSetup`, LoRA r=16 on all
   linear layers) trains on exactly the rows the loop saw, for as many steps. Every row renders
   to the same token count (digit strings, one token per digit), so TRL's shuffled batches have
   the loop's shapes. Tokens/s = the rows' tokens (prompt + answer; both answers for DPO) x
   batch x steps / time (TRL's train_runtime; the loop's wall time); peak memory =
   `torch.cuda.max_memory_allocated`, reset before each. `ratio` = stage / plain tokens/s (goal
   >= 0.8).
3. Local batched generation (`LocalGenerator`, greedy) at batch 1, 16 and 64, each for about
   `--budget-s` / 3 seconds: generated tokens/s.
4. Each candidate's weight dtype and size on disk against the base's.

Prints one JSON line and writes it to `--out` (rewritten after each part, so a run cut short
still leaves what it measured). On an H100 the defaults take about 5-6 minutes.

    python benchmarks/gpu_check.py --out gpu-check.json [--budget-s 20]
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu-smoke.json   # tiny model, CPU, seconds

Wheels to bring to a GPU machine that has PyTorch, transformers, peft and accelerate but no TRL
(Python 3.12 there; 4.6 MB in all, measured 2026-12 with `du -cb`):

    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 \
        multiprocess==0.70.19 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
        typing-inspection==0.4.5

trl 1.16 needs accelerate, datasets, huggingface_hub, jinja2, numpy, packaging, pandas, psutil,
pyarrow, pyyaml, transformers; datasets adds dill, multiprocess, xxhash, fsspec, filelock, tqdm;
flywheel's config adds pydantic. The device image has all but trl, datasets, dill, multiprocess
and pydantic (with pydantic-core, annotated-types, typing-inspection). datasets 5.2 asks for
pyarrow >= 24: if the machine's is older, add `pyarrow==26.0.1` (55 MB; 60 MB in all).
benchmarks/gpu_check.sh installs them and runs this script.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from gpu_plain_loop import (
    free_memory,
    on_gpu,
    peak_memory,
    plain_batches,
    run_plain,
    stage_setup,
)

GOAL_RATIO = 0.8  # the stage's tokens/s against the plain loop's
GENERATION_BATCHES = (1, 16, 64)
PARTS = (("sft", False), ("sft", True), ("dpo", False), ("dpo", True))


@dataclass(frozen=True)
class Sizes:
    """The model's shape and the run's sizes."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int  # 0: the tokenizer's own size
    seq_len: int  # tokens per training sequence (every row renders to exactly this)
    batch: int  # rows (SFT) or pairs (DPO) per step
    max_steps: int  # at most this many steps per part, whatever the budget
    prompt_tokens: int  # generation prompts' digits
    new_tokens: int  # generation's max_new_tokens


FULL = Sizes(896, 24, 14, 2, 4864, 151936, 512, 8, 300, 64, 128)  # Qwen2.5-0.5B's shape
SMOKE = Sizes(32, 2, 2, 1, 64, 0, 48, 2, 2, 8, 4)


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def build_base(root: Path, sizes: Sizes, dtype: torch.dtype) -> tuple[Path, int]:
    """A random Qwen2-style model and a digit-splitting BPE tokenizer, saved in `dtype`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from flywheel.llm.checkpoints import save_checkpoint
    from flywheel.sandbox.tiny_model import build_tokenizer

    rng = random.Random(0)
    texts = [digits(rng, 64) for _ in range(64)] + ["plus minus times answer"] * 8
    tokenizer = build_tokenizer(texts, vocab_size=512)
    config = Qwen2Config(
        vocab_size=sizes.vocab or len(tokenizer),
        hidden_size=sizes.hidden,
        intermediate_size=sizes.intermediate,
        num_hidden_layers=sizes.layers,
        num_attention_heads=sizes.heads,
        num_key_value_heads=sizes.kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda" if on_gpu() else "cpu"):
        model = Qwen2ForCausalLM(config).to(dtype)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    warm_up(model)
    n_parameters = sum(p.numel() for p in model.parameters())
    path = save_checkpoint(model, tokenizer, root / "base")
    del model
    free_memory()
    return path, n_parameters


def warm_up(model: Any) -> None:
    """One small forward and backward pass, so the first part measured does not pay alone for
    starting CUDA's libraries."""
    ids = torch.ones(2, 16, dtype=torch.long, device=model.device)
    model(input_ids=ids, labels=ids).loss.backward()
    model.zero_grad(set_to_none=True)


def make_rows(stage: str, n: int, seq_len: int) -> list[dict[str, Any]]:
    """`n` rows of digit strings, each rendering to exactly `seq_len` tokens (SFT: the
    conversation; DPO: prompt + chosen and prompt + rejected)."""
    rng = random.Random(1)
    n_prompt = seq_len // 4
    n_answer = seq_len - n_prompt - 5  # bos, <|user|>, <|end|>, <|assistant|>, <|end|>

    def turn(role: str, n_digits: int) -> list[dict[str, str]]:
        return [{"role": role, "content": digits(rng, n_digits)}]

    if stage == "sft":
        return [
            {"messages": turn("user", n_prompt) + turn("assistant", n_answer)} for _ in range(n)
        ]
    return [
        {
            "prompt": turn("user", n_prompt),
            "chosen": turn("assistant", n_answer),
            "rejected": turn("assistant", n_answer),
        }
        for _ in range(n)
    ]


def run_stage(
    base: Path, stage: str, lora: bool, rows: list[dict], sizes: Sizes, lr: float, out: Path
) -> dict[str, Any]:
    """flywheel's own stage on `rows` for len(rows) / batch steps: its figures and candidate."""
    from flywheel.llm.stage_setup import checkpoint_dtype
    from flywheel.llm.stages.dpo import DpoConfig, train_dpo
    from flywheel.llm.stages.sft import SftConfig, train_sft

    free_memory()
    settings = {
        "learning_rate": lr,
        "max_steps": len(rows) // sizes.batch,
        "batch_size": sizes.batch,
        "max_length": sizes.seq_len,
    }
    if stage == "sft":
        result = train_sft(base, rows, out, SftConfig(**settings), 0, setup=stage_setup(lora))
    else:
        result = train_dpo(base, rows, out, DpoConfig(**settings), 0, setup=stage_setup(lora))
    metrics = result.metrics
    figures = {
        "n_steps": metrics["n_steps"],
        "seconds": metrics["train_runtime_s"],
        "wall_s": result.wall_s,
        "peak_gpu_memory_bytes": metrics["peak_gpu_memory_bytes"],
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "n_trainable_parameters": metrics["n_trainable_parameters"],
        "candidate_dtype": str(checkpoint_dtype(result.output_path)).removeprefix("torch."),
        "candidate_bytes": weights_bytes(result.output_path),
    }
    free_memory()
    return figures


def measure_training(
    base: Path, stage: str, lora: bool, sizes: Sizes, budget_s: float, work: Path
) -> dict[str, Any]:
    """Plain loop first (it sets the step count within the budget), then the stage on the same
    rows; tokens/s of each and their ratio."""
    from flywheel.llm.stages.common import load_tokenizer

    lr = 1e-5
    tokenizer = load_tokenizer(base)
    rows = make_rows(stage, sizes.max_steps * sizes.batch, sizes.seq_len)
    batches = plain_batches(tokenizer, stage, rows, sizes.batch)
    tokens_per_row = batches[0]["input_ids"].numel() // sizes.batch  # both sequences for DPO
    plain = run_plain(base, stage, lora, batches, lr, budget_s)
    del batches
    used_rows = rows[: plain["n_steps"] * sizes.batch]
    out = work / f"{stage}-{'lora' if lora else 'full'}"
    staged = run_stage(base, stage, lora, used_rows, sizes, lr, out)
    for figures in (plain, staged):
        tokens = tokens_per_row * sizes.batch * figures["n_steps"]
        figures["tokens_per_s"] = tokens / figures["seconds"]
    ratio = staged["tokens_per_s"] / plain["tokens_per_s"]
    return {
        "tokens_per_row": tokens_per_row,
        "ratio": ratio,
        "meets_goal": ratio >= GOAL_RATIO,
        "stage": staged,
        "plain": plain,
    }


def measure_generation(base: Path, sizes: Sizes, budget_s: float) -> dict[str, Any]:
    """LocalGenerator's greedy tokens/s at each batch size, each for about budget_s / 3."""
    from flywheel.llm.checkpoints import LocalGenerator

    free_memory()
    generator = LocalGenerator.load(base)
    rng = random.Random(2)
    prompts = [
        [{"role": "user", "content": digits(rng, sizes.prompt_tokens)}]
        for _ in range(max(GENERATION_BATCHES))
    ]
    generator.generate(prompts[:1], max_new_tokens=4, batch_size=1)  # warm-up, untimed
    figures: dict[str, Any] = {}
    for batch in GENERATION_BATCHES:
        n_tokens, n_calls, started = 0, 0, time.perf_counter()
        while n_calls == 0 or time.perf_counter() - started < budget_s / len(GENERATION_BATCHES):
            answers = generator.generate(
                prompts[:batch], max_new_tokens=sizes.new_tokens, batch_size=batch
            )
            n_tokens += sum(a.n_tokens for a in answers)
            n_calls += 1
        seconds = time.perf_counter() - started
        figures[str(batch)] = {
            "tokens_per_s": n_tokens / seconds,
            "n_tokens": n_tokens,
            "n_calls": n_calls,
            "seconds": seconds,
        }
    figures["peak_gpu_memory_bytes"] = peak_memory()
    del generator
    free_memory()
    return figures


def weights_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def base_dtype(requested: str) -> torch.dtype:
    """bf16 where the GPU supports it (`auto`), else fp32; or as asked."""
    if requested == "auto":
        bf16_ok = on_gpu() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16_ok else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[requested]


def describe_run(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    import transformers
    import trl

    return {
        "benchmark": "gpu_check",
        "smoke": args.smoke,
        "device": torch.cuda.get_device_name() if on_gpu() else "cpu",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "budget_s": args.budget_s,
        "goal_ratio": GOAL_RATIO,
        "sizes": asdict(sizes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="where the JSON line is written")
    parser.add_argument("--budget-s", type=float, help="seconds per part (default 20; smoke 1)")
    parser.add_argument("--smoke", action="store_true", help="a tiny model on CPU, seconds")
    parser.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto")
    args = parser.parse_args()
    args.budget_s = args.budget_s or (1.0 if args.smoke else 20.0)
    sizes = SMOKE if args.smoke else FULL
    started = time.perf_counter()
    report = describe_run(args, sizes)

    def save() -> None:
        report["wall_s"] = time.perf_counter() - started
        args.out.write_text(json.dumps(report) + "\n")

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        from flywheel.llm.stage_setup import checkpoint_dtype

        base, n_parameters = build_base(work, sizes, base_dtype(args.dtype))
        report["model"] = {"architecture": "Qwen2ForCausalLM", "n_parameters": n_parameters}
        report["base"] = {
            "dtype": str(checkpoint_dtype(base)).removeprefix("torch."),
            "bytes": weights_bytes(base),
        }
        report["training"] = {}
        save()
        for stage, lora in PARTS:
            name = f"{stage}-{'lora' if lora else 'full'}"
            report["training"][name] = measure_training(
                base, stage, lora, sizes, args.budget_s, work
            )
            save()
        report["generation"] = measure_generation(base, sizes, args.budget_s)
    candidates = [part["stage"] for part in report["training"].values()]
    report["candidates_match_base"] = all(
        c["candidate_dtype"] == report["base"]["dtype"]
        and c["candidate_bytes"] == report["base"]["bytes"]
        for c in candidates
    )
    save()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
