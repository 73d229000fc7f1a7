"""Each stage kind from the same champion on the same battles: sft, dpo, kto, orpo, online-dpo,
rm+rl with GRPO and with RLOO, side by side, as ratios to DPO.

A copy of `--config` (configs/smoke.yaml by default: the sandbox references and judge; the
shipped round-0 student, through `sandbox.task_difficulty: 1`) with its own warehouse and
models under `--workdir` runs one round of `flywheel run` (stage dpo): the round-0 student
answers, the sandbox references and judge battle, and the round mines its SFT examples and DPO
pairs. Every kind's rows are then mined from those same battles (KTO examples, reward-model
pairs), and each arm trains from the round-0 champion on them, once per seed, in a fresh child
process (so its peak memory is its own), every section capped at `--max-steps` (a section's
own smaller `max_steps` is kept; `--max-steps 0` trains each as a real round does). A GGUF
`student.path` (configs/real-small.yaml) is fetched and converted as `flywheel run` does.
KTO, ORPO and online-dpo take DPO's settings (learning rate, epochs, batch, length, beta).
online-dpo's pairs are made once, in this process, as the train step makes them
(tasks/online_pairs.py): reward models fit from the champion on the round's DPO pairs
(training.rm's settings), `--online-samples` samples per slice prompt at temperature 1, each
prompt's best against its worst; the time that takes is added to the arm's wall time (its peak
memory is the training child's only).

Per arm and seed: held-out accuracy by the sandbox's checkers on the eval prompts, the judged
win rate against the champion on the same prompts (both orders; a win 1, a tie 0.5), the
stage's training wall time and the child's peak memory (resident set on CPU, allocated GPU
memory on a GPU), printed as an `ARM {json}` line as soon as the arm is scored (a run cut
short keeps them). An arm that cannot train is named with its error; the others go on.
Prints a table of means over the seeds, each figure as a ratio to DPO's, and one JSON line
with every figure.

    python benchmarks/bench_stages.py [--seeds 0,1,2] [--max-steps 20 | 0: each section's own]
        [--eval-size N] [--slice-size N] [--workdir /tmp/bench-stages]
        [--config configs/smoke.yaml | configs/demo.yaml | configs/real-small.yaml] [--threads 2]
        [--online-samples 4] [--arms sft,dpo,kto,orpo,online-dpo,rm+rl-grpo,rm+rl-rloo]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learning import (  # noqa: E402  (one `flywheel run` in a subprocess)
    run_seed,
    student_path_in,
)
from bench_training import run_child  # noqa: E402  (one arm in a child process)

ROUND_ID = 1
ARMS = {  # arm -> (stage, training.rl.algorithm or None)
    "sft": ("sft", None),
    "dpo": ("dpo", None),
    "kto": ("kto", None),
    "orpo": ("orpo", None),
    "online-dpo": ("online-dpo", None),
    "rm+rl-grpo": ("rm+rl", "grpo"),
    "rm+rl-rloo": ("rm+rl", "rloo"),
}
PEER = "dpo"
FIGURES = ("heldout_accuracy", "win_rate_vs_champion", "wall_s", "peak_memory_mb")


def bench_config(
    source: Path,
    workdir: Path,
    threads: int,
    online_samples: int,
    sizes: dict[str, int | None] | None = None,
) -> Path:
    """`source` with its files under `workdir`, the shipped student's tasks, one dpo round,
    KTO, ORPO and online-dpo on DPO's settings; `sizes` overrides `prompts.eval_size` and
    `prompts.slice_size` where given."""
    config = yaml.safe_load(source.read_text())
    config["warehouse"]["path"] = str(workdir / "flywheel.duckdb")
    config["student"]["path"] = str(student_path_in(workdir, config["student"]["path"]))
    for key, size in (sizes or {}).items():
        if size is not None:
            config["prompts"][key] = size
    # the shipped student's recipe (configs/demo.yaml's tasks): round 0 is copied, not built
    config["sandbox"]["task_difficulty"] = 1
    training = config["training"]
    training["output_dir"] = str(workdir / "models")
    training["cpu_threads"] = threads
    shared = {
        k: v for k, v in training["dpo"].items() if k not in ("chosen_nll_weight", "reference")
    }
    training["kto"], training["orpo"] = dict(shared), dict(shared)
    training["online_dpo"] = {**shared, "n_samples": online_samples, "temperature": 1.0}
    config["schedule"]["stages"] = ["dpo"]
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def round_zero_version(config: Any) -> Any:
    """The round-0 student (the champion every arm starts from) as a ModelVersion."""
    from flywheel.warehouse.lifecycle import ModelVersion
    from flywheel.warehouse.store import connect_warehouse

    with connect_warehouse(config.warehouse) as con:
        version_id, path = con.execute(
            "select version_id, checkpoint_path from model_versions where parent_id is null"
        ).fetchone()
    return ModelVersion(version_id, path, "champion")


def round_zero_champion(config: Any) -> str:
    """The round-0 student's checkpoint."""
    return round_zero_version(config).checkpoint_path


def capped_steps(own_steps: int, cap: int) -> int:
    """The steps an arm trains: its section's own `max_steps` when set and under `cap`, else
    `cap`; a `cap` of 0 or less keeps the section's own (-1 there: by its epochs), the steps a
    real round trains."""
    if cap <= 0:
        return own_steps
    return own_steps if 0 < own_steps < cap else cap


def arm_settings(config: Any, stage: Any, algorithm: str | None, max_steps: int) -> dict:
    """The stage's sections from the config, capped at `max_steps` (a section's own smaller
    `max_steps`, such as the RL steps a real round takes, is kept), RL on `algorithm`."""
    from flywheel.llm.stages.registry import stage_settings

    settings = {}
    for key, cfg in stage_settings(config.training, stage).items():
        own_steps = getattr(cfg, "max_steps", -1)
        updates: dict[str, Any] = {"max_steps": capped_steps(own_steps, max_steps)}
        if algorithm is not None and "algorithm" in type(cfg).model_fields:
            updates["algorithm"] = algorithm
        settings[key] = cfg.model_copy(update=updates)
    return settings


def train_arm(args: argparse.Namespace) -> dict[str, Any]:
    """One arm and seed, in this (child) process: the candidate's path, wall time and memory."""
    from flywheel.config import load_config
    from flywheel.llm.stages.registry import stage_named
    from flywheel.llm.stages.spec import StageRun
    from flywheel.tasks.mine import training_rows
    from flywheel.tasks.train import _slice_prompts, stage_setup

    config = load_config(args.base)
    stage_name, algorithm = ARMS[args.one]
    stage = stage_named(stage_name)
    out = Path(args.work) / "arms" / f"{args.one.replace('+', '-')}-s{args.seed}"
    shutil.rmtree(out, ignore_errors=True)  # an earlier run's arm (--reuse-round): trained anew
    run = StageRun(
        base_path=round_zero_champion(config),
        rows=training_rows(config, ROUND_ID, stage_name),
        out_path=out,
        settings=arm_settings(config, stage, algorithm, args.max_steps),
        seed=args.seed,
        setup=stage_setup(config),
        prompts=_slice_prompts(config, ROUND_ID) if stage.trains_on_prompts else None,
        max_completion_tokens=config.student.max_new_tokens,
    )
    result = stage.train(run)
    peak_gpu = result.metrics.get("peak_gpu_memory_bytes")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "path": str(result.output_path),
        "n_rows": len(run.rows),
        "n_steps": result.metrics.get("n_steps"),
        "wall_s": result.wall_s,
        "peak_memory_mb": (peak_gpu or peak_rss) / 2**20,
        "memory_kind": "gpu_allocated" if peak_gpu else "cpu_rss",
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
    }


def eval_prompts(config: Any) -> list[tuple[str, list[dict[str, str]]]]:
    from flywheel.warehouse.store import connect_warehouse

    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            "select prompt_text, messages from prompts where split = 'eval' and status = 'active' "
            "order by prompt_id"
        ).fetchall()
    return [(text, json.loads(messages)) for text, messages in rows]


def greedy(config: Any, path: str, evals: list[tuple[str, Any]]) -> list[str]:
    from flywheel.llm.checkpoints import generate_answers

    conversations = [c for _, c in evals]
    answers = generate_answers(
        path, conversations, max_new_tokens=config.student.max_new_tokens, device="cpu"
    )
    return [a.text for a in answers]


def score_arm(
    live: Any, evals: list[tuple[str, Any]], champion_answers: list[str], path: str
) -> dict[str, float | None]:
    """The candidate's held-out checker accuracy and its judged win rate over the champion."""
    from flywheel.tasks.evaluate import checker_accuracy
    from flywheel.tasks.rl_winrate import judged_check

    answers = greedy(live, path, evals)
    accuracy = checker_accuracy([(text, a) for (text, _), a in zip(evals, answers, strict=True)])
    prompts = [c for _, c in evals]
    check = judged_check(live, ROUND_ID, prompts, champion_answers, answers, step=0)
    return {"heldout_accuracy": accuracy, "win_rate_vs_champion": check.win_rate}


PREPARED = "prepared.json"  # under --workdir: the round's and the online pairs' seconds


def prepare(config_path: Path, workdir: Path, reuse: bool) -> tuple[Any, float | None]:
    """One `flywheel run` round (stage dpo), then every kind mined from its battles and
    online-dpo's pairs made from the champion's samples: (config, seconds the pairs took).
    With `reuse`, a round already in `workdir` is kept (mining and pairs are stored once; the
    pairs' seconds are those `prepared.json` recorded, None when it has none)."""
    from flywheel.config import load_config
    from flywheel.tasks.mine import mine_round
    from flywheel.tasks.online_pairs import make_online_pairs

    recorded = workdir / PREPARED
    if reuse and (workdir / "flywheel.duckdb").exists():
        print(f"round 1 reused from {workdir}")
        config = load_config(config_path)
        for stage, _ in ARMS.values():
            mine_round(config, ROUND_ID, stage)
        print(make_online_pairs(config, ROUND_ID, round_zero_version(config)).summary())
        saved = json.loads(recorded.read_text()) if recorded.exists() else {}
        return config, saved.get("online_pairs_s")
    status, wall_s = run_seed(config_path, 1, workdir / "round-1.log")
    if status != 0:
        raise SystemExit(f"flywheel run failed (exit {status}); see {workdir / 'round-1.log'}")
    print(f"round 1 (the battles every arm learns from) in {wall_s:.0f} s")
    config = load_config(config_path)
    for stage, _ in ARMS.values():
        mine_round(config, ROUND_ID, stage)
    started = time.monotonic()
    online = make_online_pairs(config, ROUND_ID, round_zero_version(config))
    print(online.summary())
    online_pairs_s = time.monotonic() - started
    recorded.write_text(json.dumps({"round_wall_s": wall_s, "online_pairs_s": online_pairs_s}))
    return config, online_pairs_s


def mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def ratio(value: float | None, peer: float | None) -> float | None:
    return value / peer if value is not None and peer else None


def summarise(per_seed: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per arm: each figure's mean over the seeds and its ratio to DPO's mean."""
    means = {
        arm: {f: mean([r[f] for r in runs]) for f in FIGURES} for arm, runs in per_seed.items()
    }
    return {
        arm: {
            **figures,
            "n_rows": per_seed[arm][0]["n_rows"],
            **{f"{f}_vs_{PEER}": ratio(figures[f], means.get(PEER, {}).get(f)) for f in FIGURES},
        }
        for arm, figures in means.items()
    }


def print_table(summary: dict[str, dict[str, Any]], champion_accuracy: float | None) -> None:
    def cell(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    print(f"champion (round 0) held-out accuracy {cell(champion_accuracy)}")
    print(
        f"{'arm':<11} {'rows':>5} {'accuracy':>8} {'win rate':>8} {'wall s':>7} {'peak MB':>8}"
        f"   vs {PEER}: {'acc':>5} {'win':>5} {'wall':>5} {'mem':>5}"
    )
    for arm, s in summary.items():
        print(
            f"{arm:<11} {s['n_rows']:>5} {cell(s['heldout_accuracy']):>8} "
            f"{cell(s['win_rate_vs_champion']):>8} {cell(s['wall_s'], 1):>7} "
            f"{cell(s['peak_memory_mb'], 0):>8}   {'':>6}"
            + " ".join(
                f"{cell(s[f + '_vs_' + PEER], 2):>5}"
                for f in ("heldout_accuracy", "win_rate_vs_champion", "wall_s", "peak_memory_mb")
            )
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "smoke.yaml"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--max-steps", type=int, default=20, help="cap per section; 0: each section's own"
    )
    parser.add_argument("--eval-size", type=int, help="prompts.eval_size (default: the config's)")
    parser.add_argument("--slice-size", type=int, help="prompts.slice_size (the round's prompts)")
    parser.add_argument("--workdir", default="/tmp/bench-stages")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--online-samples", type=int, default=4)
    parser.add_argument("--arms", default=",".join(ARMS), help="a subset, comma-separated")
    parser.add_argument(
        "--reuse-round",
        action="store_true",
        help="keep the round already in --workdir (run with the same options) and train arms",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(train_arm(args)), flush=True)
        return 0
    from transformers.utils import logging as hf_logging

    from flywheel.config import resolve_sandbox_endpoints
    from flywheel.sandbox.server import start_sandbox
    from flywheel.tasks.train import _slice_prompts

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per generation otherwise
    started, load_before = time.monotonic(), os.getloadavg()[0]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = {"eval_size": args.eval_size, "slice_size": args.slice_size}
    config_path = bench_config(Path(args.config), workdir, args.threads, args.online_samples, sizes)
    config, online_pairs_s = prepare(config_path, workdir, args.reuse_round)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [arm for arm in args.arms.split(",") if arm]
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:  # without the peer the table has no ratios
        raise SystemExit(f"--arms: unknown {unknown}; the arms are {', '.join(ARMS)}")
    evals = eval_prompts(config)
    n_slice_prompts = len(_slice_prompts(config, ROUND_ID))
    per_seed: dict[str, list[dict]] = {arm: [] for arm in arms}
    failed: dict[str, str] = {}  # arm -> why it could not train
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        champion_path = round_zero_champion(config)
        champion_answers = greedy(live, champion_path, evals)
        champion_accuracy = score_arm(live, evals, champion_answers, champion_path)
        for arm in arms:
            for seed in seeds:
                options = [f"--max-steps={args.max_steps}", f"--seed={seed}"]
                try:
                    trained = run_child(__file__, arm, config_path, str(workdir), options)
                except SystemExit as failure:  # its output went to stderr; the others go on
                    failed[arm] = str(failure)
                    print(f"{arm} seed {seed}: {failure}", flush=True)
                    break
                if arm == "online-dpo" and online_pairs_s is not None:  # its pairs' making
                    trained["wall_s"] += online_pairs_s
                figures = trained | score_arm(live, evals, champion_answers, trained["path"])
                per_seed[arm].append({"seed": seed, **figures})
                print(f"ARM {json.dumps({'arm': arm, 'seed': seed, **figures})}", flush=True)
    summary = summarise({arm: runs for arm, runs in per_seed.items() if runs})
    print_table(summary, champion_accuracy["heldout_accuracy"])
    for arm, why in failed.items():
        print(f"{arm}: {why}")
    result = {
        "benchmark": "bench_stages",
        "config": args.config,
        "seeds": seeds,
        "max_steps": args.max_steps,
        "threads": args.threads,
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "online_samples": args.online_samples,
        "online_pairs_s": online_pairs_s,
        "n_eval_prompts": len(evals),
        "champion_heldout_accuracy": champion_accuracy["heldout_accuracy"],
        "peer": PEER,
        "summary": summary,
        "runs": per_seed,
        "failed": failed,
        "n_slice_prompts": n_slice_prompts,
        "wall_s": time.monotonic() - started,
    }
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
