"""Judge calls saved by active battle selection, at equal gain: `judge.selection` arms side by side.

Runs `flywheel run --rounds N` on the demo config once per arm, with the same seed, the same
round-0 student and a fixed thread count (benchmarks/bench_learning.py's seed config):

- `all`: every (champion, reference) battle is judged (the default);
- `uncertain`: a judge budget of `--budget` battles per round, spent on the battles the
  reward-model ensemble fit on the earlier rounds' pairs is least certain about;
- `likely_losses`: the same budget on the battles that ensemble most expects the champion to
  lose (the likeliest SFT targets);
- `random`: the same budget on a seeded random subset (the peer of both).

For each arm: held-out accuracy per round (the sandbox's checkers, not the judge), the gain,
and the train judge calls (games sent to the judge for train battles, verifier excluded).
Prints, for each budgeted arm, its judge calls as a ratio of `all`'s and its gain minus
`all`'s and minus `random`'s (the same budget), then one JSON line with every figure.

    python benchmarks/bench_selection.py [--rounds 3] [--seed 0] [--budget 400]
        [--workdir /tmp/flywheel-selection] [--arms all,uncertain,likely_losses,random]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_learning import round_rows, run_seed, seed_config, seed_figures  # noqa: E402

ARMS = ("all", "uncertain", "likely_losses", "random")


def arm_config(base: dict[str, Any], arm: str, budget: int) -> dict[str, Any]:
    """The seed config with `judge.selection` set for the arm."""
    selection = {"strategy": arm} if arm == "all" else {"strategy": arm, "max_battles": budget}
    return base | {"judge": base["judge"] | {"selection": selection}}


def train_judge_calls(warehouse_path: Path) -> dict[int, int]:
    """Per round: the judge's games for train battles (what a paid judge bills)."""
    query = """
        select j.round_id, count(*) from judgments as j join battles as b using (battle_id)
        where b.purpose = 'train' and j.judge <> 'verifier'
        group by j.round_id order by j.round_id
    """
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        return dict(con.execute(query).fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=400, help="battles judged per round")
    parser.add_argument("--workdir", default="/tmp/flywheel-selection")
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--keep-tolerance", type=float, default=0.02)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {ARMS}")
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.config).read_text())
    workdir = Path(args.workdir).resolve()
    load_before = os.getloadavg()[0]
    arms: dict[str, Any] = {}
    for arm in args.arms.split(","):
        run_dir = workdir / arm
        run_dir.mkdir(parents=True, exist_ok=True)
        config = arm_config(
            seed_config(base, args.seed, run_dir, args.cpu_threads), arm, args.budget
        )
        config_path = run_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        status, wall_s = run_seed(config_path, args.rounds, run_dir / "run.log")
        figures = seed_figures(round_rows(run_dir / "flywheel.duckdb"), args.keep_tolerance)
        calls = train_judge_calls(run_dir / "flywheel.duckdb")
        figures |= {
            "exit_status": status,
            "run_wall_s": round(wall_s, 1),
            "train_judge_calls_by_round": calls,
            "train_judge_calls": sum(calls.values()),
        }
        arms[arm] = figures
        accuracies = ", ".join(
            "-" if r["accuracy_after"] is None else f"{r['accuracy_after']:.1%}"
            for r in figures["rounds"]
        )
        print(
            f"{arm:>13}: exit {status}, {figures['train_judge_calls']} train judge calls, "
            f"accuracy after each round {accuracies}, gain {figures['gain_points']} points, "
            f"{wall_s:.0f} s",
            file=sys.stderr,
        )
    comparisons = {arm: compare(arms, arm) for arm in arms if arm != "all"}
    summary = {
        "bench": "selection",
        "rounds": args.rounds,
        "seed": args.seed,
        "budget_battles_per_round": args.budget,
        "cpu_threads": args.cpu_threads,
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),
        "comparisons": comparisons,
        "arms": arms,
    }
    print(json.dumps(summary, default=str))


def compare(arms: dict[str, Any], arm: str) -> dict[str, Any]:
    """A budgeted arm against `all` (judge calls saved, gain) and against `random` (gain at
    the same budget), printed and returned."""
    figures, full, peer = arms[arm], arms.get("all"), arms.get("random")
    comparison: dict[str, Any] = {}
    line = f"{arm:>13}:"
    if full is not None:
        calls_ratio = figures["train_judge_calls"] / max(1, full["train_judge_calls"])
        comparison |= {
            "judge_calls_saved_vs_all": full["train_judge_calls"] - figures["train_judge_calls"],
            "judge_calls_ratio_to_all": round(calls_ratio, 3),
            "gain_minus_all_points": _difference(figures["gain_points"], full["gain_points"]),
        }
        line += (
            f" {calls_ratio:.2f} x the judge calls of all, gain "
            f"{comparison['gain_minus_all_points']:+} points against all"
        )
    if peer is not None and arm != "random":
        comparison["gain_minus_random_points"] = _difference(
            figures["gain_points"], peer["gain_points"]
        )
        line += f", {comparison['gain_minus_random_points']:+} against random (same budget)"
    print(line, file=sys.stderr)
    return comparison


def _difference(value: float | None, other: float | None) -> float | None:
    return None if value is None or other is None else round(value - other, 1)


if __name__ == "__main__":
    main()
