"""Student generation throughput: local batched vs local sequential vs a served backend.

Builds a tiny Llama student from a config (nothing downloaded; `--hidden-size`, `--n-layers`
size it), then answers the same `--n-prompts` sandbox skill prompts greedily with at most
`--max-new-tokens` tokens each:

- local batched: `LocalGenerator` (llm/checkpoints.py), loaded once, `--batch-size` prompts
  per generate() call, sorted by length with left padding (what `student.backend: local` does);
- local sequential: the same generator, one prompt per call;
- served: the checkpoint served by `student.backend` `--served-backend` (`server`:
  `transformers serve`, the CPU stand-in; `vllm` where vLLM and a GPU exist), answered
  through llm/calls.py (call cache, concurrency `--concurrency`, a fresh DuckDB warehouse)
  with the checkpoint's stop tokens, as the flow does. Server start-up is timed apart.

Tokens/s count generated tokens (local: up to the stop token; served: the server's
`completion_tokens`). Also prints the share of prompts where the served answer equals the
local one. Ratios are against local batched, measured in the same run; one JSON line last.

    python benchmarks/bench_generation.py [--n-prompts 64] [--max-new-tokens 48]
        [--served-backend server|vllm] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flywheel.config import ServeConfig, StudentConfig, WarehouseConfig  # noqa: E402
from flywheel.llm.calls import call_endpoint  # noqa: E402
from flywheel.llm.checkpoints import (  # noqa: E402
    LocalGenerator,
    checkpoint_stops,
    save_checkpoint,
)
from flywheel.llm.client import ChatRequest  # noqa: E402
from flywheel.llm.serving import serve_checkpoint, served_endpoint  # noqa: E402
from flywheel.sandbox.skills import generate_tasks  # noqa: E402
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer  # noqa: E402


def build_student(root: Path, hidden_size: int, n_layers: int) -> Path:
    tasks = generate_tasks(400, seed=21)
    tokenizer = build_tokenizer([t.prompt for t in tasks] + [str(t.answer) for t in tasks])
    model = build_tiny_llama(
        tokenizer,
        seed=0,
        hidden_size=hidden_size,
        n_layers=n_layers,
        n_heads=max(1, hidden_size // 64),
        intermediate_size=4 * hidden_size,
    )
    return save_checkpoint(model, tokenizer, root / "student")


def timed_local(
    generator: LocalGenerator, conversations: list, max_new_tokens: int, batch_size: int
) -> tuple[dict[str, float], list[str]]:
    started = time.perf_counter()
    answers = generator.generate(
        conversations, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    wall_s = time.perf_counter() - started
    n_tokens = sum(a.n_tokens for a in answers)
    figures = {"wall_s": round(wall_s, 3), "n_tokens": n_tokens, "tokens_per_s": n_tokens / wall_s}
    return figures, [a.text for a in answers]


def timed_served(
    checkpoint: Path,
    conversations: list,
    args: argparse.Namespace,
    root: Path,
) -> tuple[dict[str, float], list[str]]:
    student = StudentConfig(
        path=str(checkpoint),
        backend=args.served_backend,
        max_new_tokens=args.max_new_tokens,
        serve=ServeConfig(max_concurrency=args.concurrency, health_timeout_s=600),
    )
    stop_ids, stops = checkpoint_stops(checkpoint)
    warehouse = WarehouseConfig(path=str(root / "bench.duckdb"))
    started = time.perf_counter()
    with serve_checkpoint(
        student.serve, args.served_backend, checkpoint, "v0", root / "logs"
    ) as served:
        startup_s = time.perf_counter() - started
        endpoint = served_endpoint(student, served, stop_ids, stops)
        requests = [ChatRequest.for_endpoint(endpoint, c) for c in conversations]
        started = time.perf_counter()
        results, stats = call_endpoint(endpoint, requests, warehouse=warehouse)
        wall_s = time.perf_counter() - started
    n_tokens = sum(r.completion_tokens or 0 for r in results)
    figures = {
        "startup_s": round(startup_s, 2),
        "wall_s": round(wall_s, 3),
        "n_tokens": n_tokens,
        "n_failed": stats.n_failed,
        "tokens_per_s": n_tokens / wall_s,
    }
    return figures, [(r.text or "").strip() for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--n-layers", type=int, default=4)
    parser.add_argument("--served-backend", choices=["server", "vllm"], default="server")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    conversations = [
        [{"role": "user", "content": t.prompt}] for t in generate_tasks(args.n_prompts, seed=3)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-generation-") as tmp:
        root = Path(tmp)
        checkpoint = build_student(root, args.hidden_size, args.n_layers)
        generator = LocalGenerator.load(checkpoint, args.device)
        generator.generate(conversations[:2], max_new_tokens=2)  # warm-up
        batched, local_texts = timed_local(
            generator, conversations, args.max_new_tokens, args.batch_size
        )
        sequential, _ = timed_local(generator, conversations, args.max_new_tokens, 1)
        del generator
        served, served_texts = timed_served(checkpoint, conversations, args, root)
    agreement = sum(a == b for a, b in zip(local_texts, served_texts, strict=True)) / len(
        local_texts
    )
    base = batched["tokens_per_s"]
    for name, figures in (("local batched", batched), ("local sequential", sequential)):
        print(f"{name:>18}: {figures['tokens_per_s']:8.1f} tokens/s ({figures['wall_s']} s)")
    print(
        f"{'served ' + args.served_backend:>18}: {served['tokens_per_s']:8.1f} tokens/s "
        f"({served['wall_s']} s, start-up {served['startup_s']} s, {served['n_failed']} failed)"
    )
    print(
        f"ratios vs local batched: sequential {sequential['tokens_per_s'] / base:.3f}, "
        f"served {served['tokens_per_s'] / base:.3f}; served == local on {agreement:.1%} "
        "of prompts"
    )
    figures = {
        "benchmark": "generation",
        "n_prompts": args.n_prompts,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "device": args.device,
        "served_backend": args.served_backend,
        "local_batched_tokens_per_s": round(base, 1),
        "local_sequential_tokens_per_s": round(sequential["tokens_per_s"], 1),
        "served_tokens_per_s": round(served["tokens_per_s"], 1),
        "served_startup_s": served["startup_s"],
        "sequential_over_batched": round(sequential["tokens_per_s"] / base, 3),
        "served_over_batched": round(served["tokens_per_s"] / base, 3),
        "served_local_agreement": round(agreement, 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
