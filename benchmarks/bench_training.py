"""Training throughput and peak memory per stage: full vs LoRA, and 1 vs 2 processes.

Builds a small Llama-style model from a config (no download), then trains SFT and DPO with the
real stage functions of llm/stages/, each configuration in a fresh child process so its
peak memory is its own: full fine-tune and LoRA in process, and SFT under `accelerate launch`
with 1 and 2 processes (gloo on CPU, one GPU each on a GPU machine). Tokens/s counts the
tokens of the examples the optimizer saw (prompt + answer; both answers for DPO) over TRL's
train time (model loading and saving excluded). Peak memory is the largest resident set of the
training process(es) on CPU (with a small model mostly Python, torch and TRL themselves), and
peak allocated GPU memory on a GPU. Prints a table, ratios
against the peer measured in the same run, and one JSON line.

    python benchmarks/bench_training.py [--hidden 256] [--layers 4] [--steps 12] [--batch 4]

On a 2-core CPU the 2-process figure measures gloo overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

RUNS = [  # (name, stage, lora, launcher processes; 0 = in process)
    ("sft-full", "sft", False, 0),
    ("sft-lora", "sft", True, 0),
    ("dpo-full", "dpo", False, 0),
    ("dpo-lora", "dpo", True, 0),
    ("sft-full-accelerate-1", "sft", False, 1),
    ("sft-full-accelerate-2", "sft", False, 2),
]


def _rows(n: int) -> tuple[list[dict], list[dict]]:
    def prompt(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"What is {i} plus {i + 1}? Explain the steps."}]

    def answer(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text}]

    sft = [
        {"messages": prompt(i) + answer(f"{i} plus {i + 1} is {2 * i + 1}. " * 3)} for i in range(n)
    ]
    pairs = [
        {
            "prompt": prompt(i),
            "chosen": answer(f"{i} plus {i + 1} is {2 * i + 1}. " * 3),
            "rejected": answer(f"{i} plus {i + 1} is {i}. " * 3),
        }
        for i in range(n)
    ]
    return sft, pairs


def build_base(path: Path, hidden: int, layers: int) -> Path:
    from flywheel.llm.checkpoints import save_checkpoint
    from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

    sft, _ = _rows(64)
    texts = [m["content"] for row in sft for m in row["messages"]]
    tokenizer = build_tokenizer(texts, vocab_size=512, whole_words={"What", "is", "plus"})
    model = build_tiny_llama(
        tokenizer,
        seed=0,
        hidden_size=hidden,
        n_layers=layers,
        n_heads=max(2, hidden // 64),
        intermediate_size=hidden * 4,
    )
    return save_checkpoint(model, tokenizer, path)


def _tokens_per_example(base: Path, stage: str, rows: list[dict]) -> float:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)

    def n(messages: list[dict[str, str]]) -> int:
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    if stage == "sft":
        return sum(n(r["messages"]) for r in rows) / len(rows)
    return sum(n(r["prompt"] + r["chosen"]) + n(r["prompt"] + r["rejected"]) for r in rows) / len(
        rows
    )


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in this (child) process."""
    from flywheel.config import LoraConfig, TrainingConfig
    from flywheel.llm.launcher import StageJob, launch_stage
    from flywheel.llm.stage_setup import StageSetup
    from flywheel.llm.stages.dpo import DpoConfig, train_dpo
    from flywheel.llm.stages.sft import SftConfig, train_sft

    name, stage, lora_on, processes = next(r for r in RUNS if r[0] == args.one)
    base = Path(args.base)
    sft_rows, pair_rows = _rows(args.steps * args.batch * 2)
    rows = sft_rows if stage == "sft" else pair_rows
    cfg = (SftConfig if stage == "sft" else DpoConfig)(
        learning_rate=1e-4, max_steps=args.steps, batch_size=args.batch, max_length=256
    )
    lora = LoraConfig(enabled=True, r=16, alpha=32) if lora_on else None
    setup = StageSetup(lora=lora, cpu_threads=args.threads)
    out = Path(args.work) / name
    if processes == 0:
        train = train_sft if stage == "sft" else train_dpo
        result = train(base, rows, out, cfg, 0, setup=setup)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    else:
        training = TrainingConfig(
            output_dir=str(Path(args.work)),
            launcher="accelerate",
            num_processes=processes,
            cpu_threads=args.threads,
        )
        threads = max(1, args.threads // processes)
        job = StageJob(
            stage=stage,
            version_id=name,
            base_path=str(base),
            out_path=str(out),
            seed=0,
            settings={stage: cfg.model_dump()},
            setup={"lora": None, "cpu_threads": threads},
            rows=rows,
        )
        result = launch_stage(job, training)
        peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    metrics = result.metrics
    world = metrics["world_size"]
    tokens = _tokens_per_example(base, stage, rows) * args.batch * world * metrics["n_steps"]
    peak_gpu = metrics.get("peak_gpu_memory_bytes")
    return {
        "name": name,
        "tokens_per_s": tokens / metrics["train_runtime_s"],
        "train_runtime_s": metrics["train_runtime_s"],
        "peak_memory_mb": (peak_gpu if peak_gpu else peak_rss) / 2**20,
        "memory_kind": "gpu_allocated" if peak_gpu else "cpu_rss_per_process",
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "processes": world,
        "n_trainable_parameters": metrics["n_trainable_parameters"],
    }


def run_child(script: str, name: str, base: Path, work: str, options: list[str]) -> dict[str, Any]:
    """Run arm `name` of the benchmark `script` in a fresh process (`--one name`); the figures
    it printed on its `RESULT {json}` line."""
    child = subprocess.run(
        [sys.executable, script, "--one", name, "--base", str(base), "--work", work, *options],
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in child.stdout.splitlines() if ln.startswith("RESULT ")]
    if child.returncode != 0 or not lines:
        print(child.stdout[-3000:], child.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{name} failed (exit {child.returncode})")
    return json.loads(lines[-1].removeprefix("RESULT "))


def _ratio(figures: dict[str, dict], a: str, b: str, key: str) -> float:
    return figures[a][key] / figures[b][key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-training-") as work:
        base = build_base(Path(work) / "base", args.hidden, args.layers)
        n_params = sum(p.numel() for p in _load(base).parameters())
        figures: dict[str, dict] = {}
        for name, *_ in RUNS:
            started = time.perf_counter()
            options = [f"--{k}={getattr(args, k)}" for k in ("steps", "batch", "threads")]
            figures[name] = run_child(__file__, name, base, work, options)
            row = figures[name]
            print(
                f"{name:24s} {row['tokens_per_s']:9.0f} tok/s  peak {row['peak_memory_mb']:7.0f} MB"
                f"  loss {row['first_loss']:.3f} -> {row['last_loss']:.3f}"
                f"  ({time.perf_counter() - started:.0f} s with start-up)"
            )
    ratios = {
        "sft_lora_vs_full_tokens_per_s": _ratio(figures, "sft-lora", "sft-full", "tokens_per_s"),
        "sft_lora_vs_full_peak_memory": _ratio(figures, "sft-lora", "sft-full", "peak_memory_mb"),
        "dpo_lora_vs_full_tokens_per_s": _ratio(figures, "dpo-lora", "dpo-full", "tokens_per_s"),
        "dpo_lora_vs_full_peak_memory": _ratio(figures, "dpo-lora", "dpo-full", "peak_memory_mb"),
        "sft_lora_vs_full_trainable_parameters": _ratio(
            figures, "sft-lora", "sft-full", "n_trainable_parameters"
        ),
        "sft_2_vs_1_processes_tokens_per_s": _ratio(
            figures, "sft-full-accelerate-2", "sft-full-accelerate-1", "tokens_per_s"
        ),
        "sft_2_vs_1_processes_peak_memory_per_process": _ratio(
            figures, "sft-full-accelerate-2", "sft-full-accelerate-1", "peak_memory_mb"
        ),
    }
    for key, value in ratios.items():
        print(f"{key:46s} {value:.2f}")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        json.dumps(
            {
                "benchmark": "bench_training",
                "device": device,
                "n_parameters": n_params,
                "hidden": args.hidden,
                "layers": args.layers,
                "steps": args.steps,
                "batch": args.batch,
                "ratios": ratios,
                "runs": figures,
            }
        )
    )
    return 0


def _load(base: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base)


if __name__ == "__main__":
    raise SystemExit(main())
