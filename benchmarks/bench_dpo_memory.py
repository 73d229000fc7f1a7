"""DPO's reference model on the real SmolLM2-135M-Instruct: peak memory and wall time of
`training.dpo.reference: copy` (TRL keeps a frozen second copy of the base) against
`precomputed` (the base's log-probs computed once before training, no second model), the
latter with `gradient_checkpointing` (layer activations recomputed in the backward pass), full
fine-tune and LoRA (whose reference is the adapter switched off, whatever `reference` says).

Each arm runs the real stage (`train_dpo`) in a fresh child process so its peak resident set
(`ru_maxrss` of the child) is its own: 2 optimizer steps, batch 4, max_length 256, on generated
preference rows, with `torch.set_num_threads(--threads)` and `training.cpu_threads` the same
(1 by default) so arms compare on equal footing on a shared machine. Wall time is the whole
`train_dpo` call (model loading, the precompute, training and saving); train time is TRL's.
Prints each arm, each as a ratio to the full "copy" arm (the first arm run when `--arms` leaves
it out), and one JSON line.

Where the memory goes, per arm: the resident set after the imports, when TRL's training loop
starts (the policy loaded, the reference copy or the precomputed log-probs made) and at its
peak, beside what the parameter counts imply in fp32 (weights, gradients and AdamW's two
moments of the trainable parameters); the rest of the peak is activations and the
allocator's high-water mark.

    python benchmarks/bench_dpo_memory.py [--rows 16] [--steps 2] [--batch 4] [--threads 1]
        [--arms full-copy,full-precomputed,full-precomputed-ckpt,lora]

The checkpoint is fetched once into the flywheel cache (`smollm2_checkpoint`, ~93 MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import run_child  # noqa: E402  (the child-process runner both share)

ARMS = [  # (name, reference, lora, gradient checkpointing)
    ("full-copy", "copy", False, False),
    ("full-precomputed", "precomputed", False, False),
    ("full-precomputed-ckpt", "precomputed", False, True),
    ("lora", "copy", True, False),
]
BASELINE = "full-copy"


def _rows(n: int) -> list[dict[str, Any]]:
    """Preference pairs of a few dozen to ~150 tokens: a worked sum chosen, a wrong one rejected."""

    def prompt(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"What is {i} plus {i + 7}? Explain each step."}]

    def answer(text: str) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": text}]

    steps = "First write both numbers down, then add the units, then carry the tens. "
    return [
        {
            "prompt": prompt(i),
            "chosen": answer(steps * (1 + i % 4) + f"So {i} plus {i + 7} is {2 * i + 7}."),
            "rejected": answer(steps * (1 + i % 3) + f"So {i} plus {i + 7} is {i + 2}."),
        }
        for i in range(n)
    ]


def _status_mb(field: str) -> float:
    """A field of /proc/self/status (VmRSS: resident now, VmHWM: its peak so far), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _record_training_start(figures: dict[str, Any]) -> None:
    """Record memory and parameter counts when TRL's training loop starts (this process only)."""
    from trl import DPOTrainer

    train = DPOTrainer.train

    def measured_train(trainer: Any, *args: Any, **kwargs: Any) -> Any:
        parameters = list(trainer.model.parameters())
        figures.update(
            rss_at_train_mb=_status_mb("VmRSS"),
            peak_before_train_mb=_status_mb("VmHWM"),
            n_parameters=sum(p.numel() for p in parameters),
            n_trainable=sum(p.numel() for p in parameters if p.requires_grad),
            reference_model_loaded=trainer.ref_model is not None,
        )
        return train(trainer, *args, **kwargs)

    DPOTrainer.train = measured_train


def fp32_states_mb(n_parameters: int, n_trainable: int) -> dict[str, float]:
    """What fp32 training holds by parameter count: weights, gradients, AdamW's two moments."""
    return {
        "weights_mb": 4 * n_parameters / 2**20,
        "grads_mb": 4 * n_trainable / 2**20,
        "adamw_states_mb": 8 * n_trainable / 2**20,
    }


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """One arm, in this (child) process."""
    import torch

    from flywheel.config import LoraConfig
    from flywheel.llm.checkpoints import configure_cpu_threads
    from flywheel.llm.stage_setup import StageSetup
    from flywheel.llm.stages.dpo import DpoConfig, train_dpo

    rss_after_imports_mb = _status_mb("VmRSS")
    at_train: dict[str, Any] = {}
    _record_training_start(at_train)

    torch.set_num_threads(args.threads)
    configure_cpu_threads(args.threads)
    name, reference, lora_on, checkpointing = next(arm for arm in ARMS if arm[0] == args.one)
    cfg = DpoConfig(
        learning_rate=5e-5,
        max_steps=args.steps,
        batch_size=args.batch,
        max_length=256,
        reference=reference,
        gradient_checkpointing=checkpointing,
    )
    lora = LoraConfig(enabled=True, r=16, alpha=32) if lora_on else None
    setup = StageSetup(lora=lora, cpu_threads=args.threads)
    started = time.perf_counter()
    result = train_dpo(args.base, _rows(args.rows), Path(args.work) / name, cfg, 0, setup=setup)
    wall_s = time.perf_counter() - started
    peak_gpu = result.metrics.get("peak_gpu_memory_bytes")
    return {
        "name": name,
        "reference": result.metrics["reference"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": peak_gpu / 2**20 if peak_gpu else None,
        "wall_s": wall_s,
        "train_runtime_s": result.metrics["train_runtime_s"],
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "n_steps": result.metrics["n_steps"],
        "torch_threads": torch.get_num_threads(),
        "rss_after_imports_mb": rss_after_imports_mb,
        **at_train,
        **fp32_states_mb(at_train["n_parameters"], at_train["n_trainable"]),
    }


def _run_child(name: str, base: Path, work: str, args: argparse.Namespace) -> dict[str, Any]:
    options = [f"--{k}={getattr(args, k)}" for k in ("rows", "steps", "batch", "threads")]
    return run_child(__file__, name, base, work, options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--arms", default=",".join(arm[0] for arm in ARMS), help="the arms to run, in order"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0
    import torch

    from flywheel.llm.gguf import smollm2_checkpoint

    base = smollm2_checkpoint()
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dpo-memory-") as work:
        for name in args.arms.split(","):
            row = figures[name] = _run_child(name, base, work, args)
            print(
                f"{name:21s} peak RSS {row['peak_rss_mb']:7.0f} MB  wall {row['wall_s']:6.1f} s"
                f"  train {row['train_runtime_s']:6.1f} s  loss {row['first_loss']:.4f}"
                f" -> {row['last_loss']:.4f}  ({row['reference']})"
            )
            print(
                f"{'':21s} imports {row['rss_after_imports_mb']:5.0f} MB, at training start"
                f" {row['rss_at_train_mb']:5.0f} MB (peak so far {row['peak_before_train_mb']:5.0f}),"
                f" reference model loaded: {row['reference_model_loaded']};"
                f" {row['n_parameters'] / 1e6:.1f}M parameters, {row['n_trainable'] / 1e6:.2f}M"
                f" trained: fp32 weights {row['weights_mb']:.0f} MB, grads {row['grads_mb']:.0f}"
                f" MB, AdamW moments {row['adamw_states_mb']:.0f} MB"
            )
    baseline = BASELINE if BASELINE in figures else next(iter(figures))
    ratios = {
        name: {
            key: figures[name][key] / figures[baseline][key]
            for key in ("peak_rss_mb", "wall_s", "train_runtime_s")
        }
        for name in figures
    }
    for name, ratio in ratios.items():
        print(
            f"{name:21s} vs {baseline}: peak RSS x{ratio['peak_rss_mb']:.2f}"
            f"  wall x{ratio['wall_s']:.2f}  train x{ratio['train_runtime_s']:.2f}"
        )
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    summary = {"benchmark": "bench_dpo_memory", "device": device, "base": base.name}
    settings = {k: getattr(args, k) for k in ("rows", "steps", "batch", "threads")}
    runs = {"max_length": 256, "baseline": baseline, "ratios": ratios, "runs": figures}
    print(json.dumps({**summary, **settings, **runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
