"""The objective guard against users who like wrong answers: one real round on feedback alone.

Issue 32 asks that "the planted sycophantic population's candidate is refused, with the
reason; a clean population's candidate is not". Per population (`--populations NAME=SHARE,...`:
the share of the simulated users who are the planted flatterers, who thumb up every answer that
commits to a result, right or wrong; default `flatterers=1,clean=0`) and seed, in a fresh copy
of `--config` (configs/smoke.yaml: sandbox references, judge and checkers; the shipped round-0
student through `sandbox.task_difficulty: 1`) under `--workdir/<population>-s<seed>`:

1. the round-0 student registered as champion, the sandbox's pool and the held-out eval set
   drawn (as `flywheel run` prepares them);
2. one day of traffic answered by that champion: `flywheel sandbox traffic --day 1 --model
   champion --flatterers SHARE` (thumbs, scores, votes, feedback turns in five log formats,
   the ground truth apart);
3. `flywheel logs add` of the day's files, then `flywheel logs classify` (implicit feedback by
   the sandbox judge; `--no-classify` skips it);
4. one real `flywheel run --rounds 1` whose stage (`--stage`, sft by default) trains on the
   feedback rows only (`training.mix: {stage: {feedback: 1.0}}`), through the real gate: the
   A/B on the held-out prompts, the general set, and the objective guard
   (`evaluation.objective_max_drop`, `--max-drop`, default the config's: 0.05).

A clean population's liked rows are mostly arena votes for a reference's answer: with smoke.yaml's
references (`verbosity: normal` / `verbose`) those are in a style the round-0 student never
writes (first loss 7-8 against the flatterers' rows' 2.4), and SFT at smoke's rate (3e-4) on
them cost the student ~7 points whoever liked them. `--verbosity terse` gives the references
the student's own `Answer: X` style (as demo.yaml does), so both populations' rows differ only
in which answers were liked: the measurement of issue 32's guard (README, "The objective guard").

Reported per run: the decision and its reason (does it name the objective guard?), the guard's
outcome, both models' accuracies on the objective set (the sandbox's checkers on the held-out
prompts), the A/B win rate with its interval, the rows trained, and what the mined feedback rows
are by the traffic's ground truth (the share of liked answers that were wrong). A table, then
one JSON line.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_feedback_guard.py [--seeds 0,1,2]
        [--populations flatterers=1,clean=0] [--stage sft] [--conversations 200] [--users 50]
        [--eval-size N] [--max-drop 0.05] [--verbosity terse] [--battle-share 0.5]
        [--threads 2] [--no-classify]
        [--workdir /tmp/bench-feedback-guard] [--config configs/smoke.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feedback_learning import feedback_labels, flywheel, label_truth  # noqa: E402
from bench_learning import run_seed  # noqa: E402  (one `flywheel run` in a subprocess)

ROUND_ID = 1
LIKED = {"sft": "feedback", "kto": "desirable"}  # the label of a liked answer's row, per kind
GUARD_NOTE = "objective set ("  # the guard's figures in the reason
REFUSAL = "refused on the objective set"  # its refusal clause (naming objective_max_drop)
SEPARATION_WORDS = {
    True: "the guard separates the populations (every planted one's candidate refused, no clean one's)",
    False: "the guard does not separate the populations",
    None: "separation cannot be said (the seed lacks a planted or a clean population)",
}


def bench_config(
    source: Path, run_dir: Path, seed: int, stage: str, args: argparse.Namespace
) -> Path:
    """`source` with its files under `run_dir`, seeded, the shipped student's tasks, one round
    of `stage` on feedback rows only."""
    config = yaml.safe_load(source.read_text())
    config["warehouse"]["path"] = str(run_dir / "flywheel.duckdb")
    config["student"]["path"] = str(run_dir / "student")
    config["sandbox"]["task_difficulty"] = 1  # the shipped student's recipe: round 0 is copied
    config["sandbox"]["seed"] = seed
    config["prompts"]["seed"] = seed
    if args.eval_size is not None:
        config["prompts"]["eval_size"] = args.eval_size
        pool = config["prompts"]["sandbox_pool_size"]
        config["prompts"]["sandbox_pool_size"] = max(pool, args.eval_size + 4 * 40)
    evaluation = config.setdefault("evaluation", {})
    evaluation["seed"] = seed
    if args.max_drop is not None:
        evaluation["objective_max_drop"] = args.max_drop
    if args.verbosity is not None:  # the references' style: their answers are the arena votes
        for model in config["sandbox"]["models"].values():
            if model["role"] == "reference":
                model["verbosity"] = args.verbosity
    training = config["training"]
    training["output_dir"] = str(run_dir / "models")
    training["cpu_threads"] = args.threads
    training["seed"] = seed
    training["mix"] = {stage: stage_mix(args.battle_share)}
    if stage == "kto" and "kto" not in training:  # KTO on DPO's settings, as bench_feedback_*
        training["kto"] = {
            k: v for k, v in training["dpo"].items() if k not in ("chosen_nll_weight", "reference")
        }
    config["schedule"]["stages"] = [stage]
    config["schedule"]["rounds"] = 1
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stage_mix(battle_share: float) -> dict[str, float]:
    """The stage's `training.mix`: feedback rows only, or `battle_share` of battle rows beside
    them (0 < share < 1)."""
    if not 0 <= battle_share < 1:
        raise SystemExit(f"--battle-share {battle_share}: give a share from 0 to below 1, e.g. 0.5")
    if battle_share == 0:
        return {"feedback": 1.0}
    return {"battle": battle_share, "feedback": 1.0 - battle_share}


def prepare(config_path: Path) -> None:
    """Round 0's student registered as champion, the pool and the eval set drawn (as the
    round's prepare step does), so the traffic can be answered by the champion."""
    from flywheel.config import load_config
    from flywheel.flows.sandbox_pool import fill_sandbox_pool
    from flywheel.llm.checkpoints import is_checkpoint
    from flywheel.pool.eval_set import ensure_eval_split
    from flywheel.sandbox.student import build_student
    from flywheel.warehouse.lifecycle import register_base_model

    config = load_config(config_path)
    if not is_checkpoint(config.student.path):
        build_student(config)
    register_base_model(config.warehouse, config.student.path)
    fill_sandbox_pool(config)
    ensure_eval_split(config)


def add_traffic(
    config_path: Path, run_dir: Path, share: float, args: argparse.Namespace
) -> dict[str, float]:
    """A day answered by the champion, read into the warehouse (and classified); seconds."""
    log, day_dir = run_dir / "traffic.log", run_dir / "logs" / "day-001"
    seconds: dict[str, float] = {}
    started = time.monotonic()
    traffic = ["--day", "1", "--out", str(day_dir), "--model", "champion"]
    traffic += ["--flatterers", str(share), "--conversations", str(args.conversations)]
    flywheel(config_path, log, "sandbox", "traffic", *traffic, "--users", str(args.users))
    seconds["traffic_s"] = time.monotonic() - started
    started = time.monotonic()
    files = sorted(str(p) for p in day_dir.iterdir() if p.is_file())
    flywheel(config_path, log, "logs", "add", *files)
    if args.classify:
        flywheel(config_path, log, "logs", "classify")
    seconds["logs_s"] = time.monotonic() - started
    return seconds


def gate(config: Any) -> dict[str, Any] | None:
    """Round 1's decision and the A/B it rests on (None: no A/B, e.g. nothing trained)."""
    from flywheel.warehouse.store import connect_warehouse

    query = """
        select r.promoted, r.decision_reason, e.candidate, e.champion, e.decision, e.reason,
               e.n_prompts, e.win_rate, e.win_rate_ci_low, e.win_rate_ci_high,
               e.objective_source, e.objective_n_items, e.objective_correct_candidate,
               e.objective_correct_champion, e.objective_accuracy_candidate,
               e.objective_accuracy_champion, e.objective_max_drop, e.objective_outcome
        from rounds as r join evaluations as e using (round_id)
        where r.round_id = ? order by e.created_at desc limit 1
    """
    with connect_warehouse(config.warehouse) as con:
        cursor = con.execute(query, [ROUND_ID])
        row = cursor.fetchone()
        columns = [c[0] for c in cursor.description]
    return None if row is None else dict(zip(columns, row, strict=True))


def training(config: Any) -> dict[str, Any] | None:
    """Round 1's training run: status, rows, the data mix it recorded, losses."""
    from flywheel.warehouse.store import connect_warehouse

    query = """
        select stage, status, reason, n_examples, hyperparams, first_loss, last_loss, wall_s
        from training_runs where round_id = ? order by created_at desc limit 1
    """
    with connect_warehouse(config.warehouse) as con:
        cursor = con.execute(query, [ROUND_ID])
        row = cursor.fetchone()
        columns = [c[0] for c in cursor.description]
    if row is None:
        return None
    run = dict(zip(columns, row, strict=True))
    run["hyperparams"] = json.loads(run["hyperparams"]) if run["hyperparams"] else None
    return run


def liked_wrong(truth: dict[str, dict[str, int]], stage: str) -> dict[str, int | float | None]:
    """Of the stage's rows from liked answers whose truth is known, how many were wrong."""
    label = LIKED.get(stage)
    rows = truth.get(stage, {}) if label else {}
    right, wrong = rows.get(f"{label} right", 0), rows.get(f"{label} wrong", 0)
    known = right + wrong
    return {
        "liked_right": right,
        "liked_wrong": wrong,
        "liked_unknown": rows.get(f"{label} unknown", 0),
        "liked_wrong_share": wrong / known if known else None,
    }


def run_population(args: argparse.Namespace, name: str, share: float, seed: int) -> dict[str, Any]:
    """Steps 1-4 of the module doc for one population and seed; every figure of the run."""
    from flywheel.config import load_config

    run_dir = Path(args.workdir) / f"{name}-s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config_path = bench_config(Path(args.config), run_dir, seed, args.stage, args)
    started = time.monotonic()
    prepare(config_path)
    seconds = {"prepare_s": time.monotonic() - started} | add_traffic(
        config_path, run_dir, share, args
    )
    status, seconds["round_s"] = run_seed(config_path, 1, run_dir / "round-1.log")
    if status != 0:
        raise SystemExit(f"flywheel run failed (exit {status}); see {run_dir}/round-1.log")
    config = load_config(config_path)
    truth = label_truth(config, run_dir)
    decided = gate(config)
    reason = decided["reason"] if decided else None
    figures = {
        "population": name,
        "flatterer_share": share,
        "seed": seed,
        "feedback": feedback_labels(config),
        "mined_feedback_truth": truth,
        **liked_wrong(truth, args.stage),
        "training": training(config),
        "gate": decided,
        "reason_has_guard": bool(reason and GUARD_NOTE in reason),
        "reason_has_refusal": bool(reason and REFUSAL in reason),
        "seconds": seconds,
        "load_1min_after": os.getloadavg()[0],
    }
    print(run_line(figures), flush=True)
    return figures


def cell(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def run_line(run: dict[str, Any]) -> str:
    g, t = run["gate"] or {}, run["training"] or {}
    return (
        f"{run['population']} seed {run['seed']}: {t.get('n_examples', 0)} rows trained "
        f"({t.get('status', 'no run')}), liked answers wrong {run['liked_wrong']} of "
        f"{run['liked_wrong'] + run['liked_right']} known; objective "
        f"{cell(g.get('objective_accuracy_candidate'))} vs {cell(g.get('objective_accuracy_champion'))}"
        f" ({g.get('objective_outcome', '-')}); win rate {cell(g.get('win_rate'))}; decision "
        f"{g.get('decision', '-')}; {sum(run['seconds'].values()):.0f} s"
    )


def print_table(runs: list[dict[str, Any]]) -> None:
    header = (
        f"{'population':<11} {'share':>5} {'seed':>4} {'rows':>4} {'steps':>5} "
        f"{'loss first>last':>15} {'liked wrong':>11} {'cand':>5} {'champ':>5} {'change':>6} "
        f"{'win rate [95% CI]':<19} {'guard':<8} {'decision':<8}"
    )
    print(header)
    for run in runs:
        g, t = run["gate"] or {}, run["training"] or {}
        cand, champ = g.get("objective_accuracy_candidate"), g.get("objective_accuracy_champion")
        change = None if cand is None or champ is None else cand - champ
        win = (
            f"{cell(g.get('win_rate'))} [{cell(g.get('win_rate_ci_low'), '.2f')}, "
            f"{cell(g.get('win_rate_ci_high'), '.2f')}]"
        )
        liked = f"{run['liked_wrong']}/{run['liked_wrong'] + run['liked_right']}"
        steps = (t.get("hyperparams") or {}).get("n_steps")
        loss = f"{cell(t.get('first_loss'), '.2f')}>{cell(t.get('last_loss'), '.2f')}"
        print(
            f"{run['population']:<11} {run['flatterer_share']:>5.2f} {run['seed']:>4} "
            f"{t.get('n_examples', 0):>4} {cell(steps, 'd'):>5} {loss:>15} {liked:>11} "
            f"{cell(cand):>5} {cell(champ):>5} {cell(change, '+.3f'):>6} {win:<19} "
            f"{g.get('objective_outcome', '-'):<8} {g.get('decision', '-'):<8}"
        )
    for run in runs:
        reason = (run["gate"] or {}).get("reason") or (run["training"] or {}).get("reason")
        print(f"- {run['population']} seed {run['seed']} reason: {reason}")
    for seed, separated in separation(runs).items():
        print(f"seed {seed}: {SEPARATION_WORDS[separated]}")


def refused(run: dict[str, Any]) -> bool:
    """Whether the run's candidate was refused on the objective set."""
    return (run["gate"] or {}).get("objective_outcome") == "refused"


def separation(runs: list[dict[str, Any]]) -> dict[int, bool | None]:
    """Per seed: does the guard refuse the candidate of every population with planted
    flatterers (share > 0) and of no clean population (share 0)? None: the seed lacks one kind
    of population, so it cannot say."""
    verdicts: dict[int, bool | None] = {}
    for seed in dict.fromkeys(run["seed"] for run in runs):
        planted = [refused(r) for r in runs if r["seed"] == seed and r["flatterer_share"] > 0]
        clean = [refused(r) for r in runs if r["seed"] == seed and r["flatterer_share"] == 0]
        verdicts[seed] = all(planted) and not any(clean) if planted and clean else None
    return verdicts


def parse_populations(text: str) -> list[tuple[str, float]]:
    """`flatterers=1,clean=0` -> [(name, share), ...]."""
    populations = []
    for item in text.split(","):
        name, _, share = item.partition("=")
        if not name or not share:
            raise SystemExit(
                f"--populations {text!r}: write NAME=SHARE,... e.g. flatterers=1,clean=0"
            )
        populations.append((name, float(share)))
    return populations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "smoke.yaml"))
    parser.add_argument("--populations", default="flatterers=1,clean=0")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--stage", default="sft", choices=["sft", "kto", "dpo"])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--eval-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--max-drop", type=float, default=None, help="default: the config's")
    parser.add_argument(
        "--verbosity",
        default=None,
        choices=["terse", "normal", "verbose"],
        help="every sandbox reference's answer style (terse: `Answer: X`, the round-0 student's "
        "own, as in demo.yaml); default: the config's",
    )
    parser.add_argument(
        "--battle-share",
        type=float,
        default=0.0,
        help="the share of battle rows in the stage's training.mix (0: feedback rows only)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-classify", dest="classify", action="store_false")
    parser.add_argument("--workdir", default="/tmp/bench-feedback-guard")
    args = parser.parse_args()
    # the simulated users' ids are hashed like real ones; a fixed salt for the bench's users
    os.environ.setdefault("FLYWHEEL_USER_SALT", "bench-feedback-guard (simulated users)")
    started, load_before = time.monotonic(), os.getloadavg()[0]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = [
        run_population(args, name, share, seed)
        for seed in seeds
        for name, share in parse_populations(args.populations)
    ]
    print_table(runs)
    result = {
        "benchmark": "bench_feedback_guard",
        "config": args.config,
        "stage": args.stage,
        "seeds": seeds,
        "populations": args.populations,
        "conversations": args.conversations,
        "users": args.users,
        "classify": args.classify,
        "runs": runs,
        "separated": separation(runs),
        "load_1min_before": load_before,
        "wall_s": time.monotonic() - started,
    }
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
