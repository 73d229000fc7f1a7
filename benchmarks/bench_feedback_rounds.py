"""Chained feedback rounds: each night the users chat with the current champion and the next
round learns from their feedback beside its battles, against the same nights on battles alone.

Per seed, a copy of `--config` (configs/demo.yaml by default), each with its own warehouse,
models and sandbox pool (`--pool-size`) per arm, every run seed set to the seed (as
bench_learning):

- arm `battles`: night d is `flywheel run --rounds d` (one round a night);
- arm `feedback`: night 1 is the same round; before each later night d,
  `flywheel sandbox traffic --day d --model champion --conversations C` writes the day's users
  chatting with the champion of that moment (its answers through `student.backend`), and the
  round reads them (`logs.paths`: every day written so far; `logs.classify` with `--classify`)
  and mines their feedback beside its battles (no `training.mix`: every row);
- arm `feedback-sft`: the same, with the preference stages on battle rows only
  (`training.mix: {rm+rl: {battle: 1}, dpo: {battle: 1}}`): the feedback trains SFT.

Per round: the champion's held-out accuracy after the decision (the sandbox's checkers on the
eval prompts), the decision, and the feedback rows the round mined (SFT examples and preference
pairs of origin feedback). Prints a table per arm (accuracy per seed and round, mean gain) and
one JSON line. A rerun with the same options goes on where the last one stopped (each night's
`flywheel run --rounds d` skips finished rounds; a day's traffic already written is kept).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_feedback_rounds.py [--seeds 0,1,2]
        [--nights 3] [--conversations 1000] [--classify] [--workdir /tmp/bench-feedback-rounds]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_feedback_learning import flywheel  # noqa: E402  (one `flywheel ...` command)
from bench_learning import round_rows, seed_config, seed_figures  # noqa: E402

ARMS = ("battles", "feedback", "feedback-sft")
# feedback-sft: the users' feedback trains SFT only; the preference stages keep to battle rows
PREFERENCE_ON_BATTLES = {"rm+rl": {"battle": 1.0}, "dpo": {"battle": 1.0}}
SALT_ENV = "FLYWHEEL_USER_SALT"  # the simulated users' ids are hashed with it (inherited)
FEEDBACK_ROWS_QUERY = """
    select round_id, 'sft' as kind, count(*) from sft_examples
    where origin = 'feedback' group by all
    union all
    select round_id, kind, count(*) from preference_pairs where origin = 'feedback' group by all
    order by 1, 2
"""


def arm_config(
    base: dict[str, Any], arm: str, seed: int, run_dir: Path, args: argparse.Namespace
) -> Path:
    """The seed's copy of the config for one arm, written under `run_dir`."""
    config = seed_config(base, seed, run_dir, args.cpu_threads, pool_size=args.pool_size)
    if arm == "feedback-sft":
        config["training"]["mix"] = PREFERENCE_ON_BATTLES
    if arm.startswith("feedback"):
        logs = config.setdefault("logs", {})
        logs["paths"] = [str(run_dir / "logs" / "*" / "day-*.jsonl")]
        logs["add_prompts"] = True
        logs["classify"] = bool(args.classify)
    path = run_dir / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def run_arm(config_path: Path, arm: str, nights: int, conversations: int) -> None:
    """The arm's nights, one round each; the feedback arm's users chat with the champion
    before every night after the first (a day already written is not written again)."""
    run_dir = config_path.parent
    log = run_dir / "nights.log"
    for night in range(1, nights + 1):
        day_dir = run_dir / "logs" / f"day-{night}"
        if arm.startswith("feedback") and night > 1 and not any(day_dir.glob("day-*.jsonl")):
            flywheel(
                config_path,
                log,
                *("sandbox", "traffic", "--day", str(night), "--out", str(day_dir)),
                *("--model", "champion", "--conversations", str(conversations)),
            )
        flywheel(config_path, log, "run", "--rounds", str(night))


def feedback_rows(warehouse: Path) -> dict[int, dict[str, int]]:
    """Per round, the feedback rows mined by kind (sft, dpo, rm)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(FEEDBACK_ROWS_QUERY).fetchall()
    mined: dict[int, dict[str, int]] = {}
    for round_id, kind, n in rows:
        mined.setdefault(int(round_id), {})[kind] = int(n)
    return mined


def arm_figures(run_dir: Path) -> dict[str, Any]:
    warehouse = run_dir / "flywheel.duckdb"
    figures = seed_figures(round_rows(warehouse), keep_tolerance=0.02)
    figures["feedback_rows"] = feedback_rows(warehouse)
    return figures


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(by_arm: dict[str, dict[int, dict[str, Any]]], nights: int) -> None:
    heads = " ".join(f"r{n:<5}" for n in range(nights + 1))
    print(f"{'arm':<9} {'seed':>4} {heads} gain  feedback rows per round")
    for arm, by_seed in by_arm.items():
        for seed, f in by_seed.items():
            after = [f["accuracy_round0"], *[r["accuracy_after"] for r in f["rounds"]]]
            mined = {k: v for k, v in sorted(f["feedback_rows"].items())}
            print(
                f"{arm:<9} {seed:>4} {' '.join(f'{pct(a):<6}' for a in after)} "
                f"{f['gain_points']:+5.1f}  {mined or '-'}"
            )
        gains = [f["gain_points"] for f in by_seed.values() if f["gain_points"] is not None]
        if gains:
            print(
                f"{arm:<9} mean gain {statistics.fmean(gains):+.1f} points over {len(gains)} seeds"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument(
        "--conversations", type=int, default=1000, help="users' conversations a day"
    )
    parser.add_argument("--classify", action="store_true", help="also implicit feedback")
    parser.add_argument("--pool-size", type=int, default=4000)
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-feedback-rounds"))
    args = parser.parse_args()
    if args.nights < 2:
        raise SystemExit("--nights: at least 2 (the feedback starts after the first night)")
    os.environ.setdefault(SALT_ENV, "bench-feedback-rounds")
    base = yaml.safe_load(Path(args.config).read_text())
    seeds = [int(s) for s in args.seeds.split(",")]
    by_arm: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            run_dir = args.workdir / f"{arm}-seed-{seed}"
            config_path = arm_config(base, arm, seed, run_dir, args)
            run_arm(config_path, arm, args.nights, args.conversations)
            by_arm[arm][seed] = arm_figures(run_dir)
            print(f"{arm} seed {seed}: {by_arm[arm][seed]['gain_points']:+.1f} points", flush=True)
    print_table(by_arm, args.nights)
    print(
        json.dumps(
            {
                "benchmark": "bench_feedback_rounds",
                "config": args.config,
                "seeds": seeds,
                "nights": args.nights,
                "conversations_per_day": args.conversations,
                "classify": args.classify,
                "arms": {arm: {str(s): f for s, f in fs.items()} for arm, fs in by_arm.items()},
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
