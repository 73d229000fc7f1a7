"""Torch CPU threads on a shared machine: 1 thread vs 2 threads vs 2 threads with
`OMP_WAIT_POLICY=PASSIVE` (what flywheel/__init__.py sets by default), on the same work.

Each arm runs in a fresh Python process (the OpenMP runtime reads `OMP_WAIT_POLICY` once, when
torch loads it), `--repeats` times, and its median is reported:

- matmul: `--n-matmuls` products (256x576)@(576x1536), the real student's (SmolLM2-135M) MLP
  shape for a batch of 256 tokens;
- tiny fwd+bwd: `--n-steps` forward and backward passes of a ~1M-parameter Llama (hidden 64,
  2 layers, batch 4, length 128), many small ops where idle threads' spinning shows most.

With `--load N`, N load processes run beside the arms (a loaded machine) and are stopped at the
end: `--load-kind python` pure-Python busy loops, `--load-kind torch` torch processes doing the
same matmuls with 2 threads (other training on the machine, spinning as it waits), with
`OMP_WAIT_POLICY` as this process has it. Ratios are the arm's time over 1 thread's; one JSON line last.

    python benchmarks/bench_threads.py [--load 2] [--load-kind python|torch] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

ARMS = {  # name: (torch threads, OMP_WAIT_POLICY or None for the runtime's default)
    "1 thread": (1, None),
    "2 threads": (2, None),
    "2 threads + PASSIVE": (2, "PASSIVE"),
}


def work(n_threads: int, n_matmuls: int, n_steps: int) -> dict[str, float]:
    """Seconds for the matmuls and for the tiny model's steps (run inside the arm's process)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(n_threads)
    torch.manual_seed(0)
    a, b = torch.randn(256, 576), torch.randn(576, 1536)
    started = time.perf_counter()
    for _ in range(n_matmuls):
        a @ b
    matmul_s = time.perf_counter() - started
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    ids = torch.randint(0, 512, (4, 128))
    model(input_ids=ids, labels=ids).loss.backward()  # warm-up
    started = time.perf_counter()
    for _ in range(n_steps):
        model(input_ids=ids, labels=ids).loss.backward()
    return {"matmul_s": matmul_s, "tiny_step_s": time.perf_counter() - started}


def run_arm(n_threads: int, wait_policy: str | None, args: argparse.Namespace) -> dict:
    """One arm in a fresh process, with only this arm's thread settings in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if wait_policy is not None:
        env["OMP_WAIT_POLICY"] = wait_policy
    command = [sys.executable, __file__, "--worker", str(n_threads)]
    command += ["--n-matmuls", str(args.n_matmuls), "--n-steps", str(args.n_steps)]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


LOADS = {
    "python": "while True: pass",
    "torch": "import torch\ntorch.set_num_threads(2)\na, b = torch.randn(256, 576), "
    "torch.randn(576, 1536)\nwhile True: a @ b",
}


@contextmanager
def busy_load(n_processes: int, kind: str) -> Iterator[None]:
    """`n_processes` busy processes of `kind` (see LOADS) while the block runs."""
    loops = [subprocess.Popen([sys.executable, "-c", LOADS[kind]]) for _ in range(n_processes)]
    try:
        time.sleep(3.0 if loops else 0.0)  # torch takes ~2 s to import
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes beside the arms")
    parser.add_argument("--load-kind", choices=sorted(LOADS), default="python")
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm (median reported)")
    parser.add_argument("--n-matmuls", type=int, default=400)
    parser.add_argument("--n-steps", type=int, default=30)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(work(args.worker, args.n_matmuls, args.n_steps)))
        return
    medians: dict[str, dict[str, float]] = {}
    with busy_load(args.load, args.load_kind):
        runs: dict[str, list[dict]] = {name: [] for name in ARMS}
        for _ in range(args.repeats):  # arms interleaved, so a change in load hits them all
            for name, (n_threads, policy) in ARMS.items():
                runs[name].append(run_arm(n_threads, policy, args))
        for name, arm_runs in runs.items():
            medians[name] = {k: statistics.median(r[k] for r in arm_runs) for k in arm_runs[0]}
    base = medians["1 thread"]
    print(
        f"load: {args.load} busy {args.load_kind} processes on {os.cpu_count()} CPUs, "
        f"{args.repeats} runs each"
    )
    for name, times in medians.items():
        print(
            f"{name:>20}: matmul {times['matmul_s']:.2f} s "
            f"({times['matmul_s'] / base['matmul_s']:.2f}x), tiny fwd+bwd "
            f"{times['tiny_step_s']:.2f} s ({times['tiny_step_s'] / base['tiny_step_s']:.2f}x)"
        )
    ratios = {
        name: {k: round(v / base[k], 3) for k, v in times.items()}
        for name, times in medians.items()
    }
    summary = {"bench": "threads", "load": args.load, "load_kind": args.load_kind}
    print(json.dumps({**summary, "seconds": medians, "ratio": ratios}))


if __name__ == "__main__":
    main()
