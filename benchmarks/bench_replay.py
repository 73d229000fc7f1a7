"""Many nights: round wall time over many rounds with and without the replay budget
(`training.mining.replay_rows`), and the accuracy the cap costs, if any (issue 33).

Two arms from the same round-0 student (the shipped one) and the same seed, each a copy of
`--config` (configs/demo.yaml by default) with its own warehouse and models under `--workdir`,
a small slice (`--slice-size` prompts per round, `--eval-size` held-out prompts), every round
the same stage (`--stages`, dpo by default: the stage whose rows accumulate) and
`training.mining.accumulate: true`:

- `uncapped` (the peer): every round trains on every row mined since round 1;
- `capped`: `training.mining.replay_rows: {<stage>: --replay-rows}` for every stage named,
  i.e. at most that many earlier rows (newest round first, widest gap first).

Each arm is a real `flywheel run --rounds K` in a subprocess, resumed in slices of
`--slice-rounds` rounds; the two arms run each slice side by side and wait for each other before
the next (both 1-5, then both 6-10, ...), so that the same rounds of both arms run under the same
load (measured in turns, one arm's round 1 took 23 s and the other's 48 s at load 7-8); a rerun
with the same `--workdir` resumes where it stopped. From each warehouse it reads, per round: the round's wall time (`rounds.wall_s`),
its train step's (`training_runs.wall_s`), the rows trained (`hyperparams.replay`: this round's
and earlier rounds'), and the champion's held-out accuracy by the sandbox's checkers after the
decision (`evaluations`). Prints a table per round with both arms side by side, the means of
rounds 1-5 and of the last five, the slope (seconds per round, least squares) of round and train
wall time, each capped figure as a ratio to the uncapped one, the champions' final accuracy, and
one JSON line with every figure. Wall times are only compared within one run of this script.

    python benchmarks/bench_replay.py [--rounds 30] [--slice-rounds 5] [--replay-rows 80]
        [--slice-size 30] [--eval-size 100] [--stages dpo] [--seed 0] [--threads 1]
        [--config configs/demo.yaml] [--workdir /tmp/bench-replay] [--report-only]

`--report-only` runs nothing and reports the rounds both arms have finished in `--workdir` (e.g.
while a long run is between slices, or after one stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PEER = "uncapped"
ARMS = ("uncapped", "capped")
WINDOW = 5  # rounds compared at the start and at the end of the run (fewer in a short run)
POOL_MARGIN = 2  # pool prompts per slice prompt needed: dedup and decontamination drop some

ROUNDS_QUERY = """
    with train as (
        select round_id, stage, status, wall_s, n_examples, hyperparams->'$.replay' as replay
        from training_runs
        qualify row_number() over (partition by round_id, stage order by created_at desc) = 1
    ), decided as (
        select round_id, decision, sandbox_accuracy_candidate, sandbox_accuracy_champion
        from evaluations
        qualify row_number() over (partition by round_id order by created_at desc) = 1
    )
    select r.round_id, r.stage, r.status, r.wall_s as round_wall_s,
           t.status as train_status, t.wall_s as train_wall_s, t.n_examples,
           cast(t.replay->>'$.n_this_round' as integer) as n_this_round,
           cast(t.replay->>'$.n_earlier' as integer) as n_earlier,
           cast(t.replay->>'$.n_earlier_available' as integer) as n_earlier_available,
           d.decision, d.sandbox_accuracy_candidate, d.sandbox_accuracy_champion
    from rounds as r
    left join train as t on t.round_id = r.round_id and t.stage = r.stage
    left join decided as d on d.round_id = r.round_id
    order by r.round_id
"""


def arm_config(
    base: dict[str, Any], arm: str, run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """`base` for one arm: its own files under `run_dir`, every run seed `args.seed`, the small
    slice and eval set, the stages, accumulate on, and (arm `capped`) the replay cap."""
    config = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    stages = args.stages.split(",")
    config["warehouse"]["path"] = str(run_dir / "flywheel.duckdb")
    config["student"]["path"] = str(run_dir / "student")
    config["sandbox"]["seed"] = args.seed
    config["sandbox"]["task_difficulty"] = 1  # the shipped student's recipe: copied, not built
    prompts = config["prompts"]
    prompts |= {"seed": args.seed, "slice_size": args.slice_size, "eval_size": args.eval_size}
    prompts["sandbox_pool_size"] = args.eval_size + POOL_MARGIN * args.slice_size * args.rounds
    config["schedule"] |= {"stages": stages, "rounds": args.rounds}
    config.setdefault("evaluation", {})["seed"] = args.seed
    training = config["training"]
    training |= {"seed": args.seed, "cpu_threads": args.threads}
    training["output_dir"] = str(run_dir / "models")
    mining = training.setdefault("mining", {})
    mining["accumulate"] = True
    mining.pop("replay_rows", None)
    if arm == "capped":
        mining["replay_rows"] = {stage: args.replay_rows for stage in stages}
    return config


def slice_ends(rounds: int, slice_rounds: int) -> list[int]:
    """The round totals each `flywheel run --rounds K` of an arm runs up to: 5, 10, ..., rounds."""
    ends = list(range(slice_rounds, rounds, slice_rounds))
    return [*ends, rounds]


def run_slice_side_by_side(config_paths: dict[str, Path], rounds: int) -> dict[str, int]:
    """`flywheel run --rounds K` on every arm's config at once (each resuming its own
    warehouse, Prefect home and log beside its config), so that the same round of both arms
    runs under the same load; each arm's exit status."""
    children = {}
    for arm, config_path in config_paths.items():
        run_dir = config_path.parent
        with (run_dir / "run.log").open("a") as log:
            children[arm] = subprocess.Popen(
                [sys.executable, "-m", "flywheel.flows.cli", "run", "--config", str(config_path)]
                + ["--rounds", str(rounds)],
                cwd=REPO_ROOT,
                env=run_env(run_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    return {arm: child.wait() for arm, child in children.items()}


def round_rows(warehouse_path: Path) -> list[dict[str, Any]]:
    """Per round of an arm's warehouse: walls, rows trained, decision and accuracies."""
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        result = con.execute(ROUNDS_QUERY)
        columns = [c[0] for c in result.description]
        return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def with_champion_accuracy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each round's row with `champion_accuracy`: the champion's held-out accuracy after the
    round's decision (the candidate's when promoted; the last known one when not evaluated)."""
    known: float | None = None
    out = []
    for row in rows:
        if row["sandbox_accuracy_champion"] is not None:
            known = row["sandbox_accuracy_champion"]
        if row["decision"] == "promote":
            known = row["sandbox_accuracy_candidate"]
        out.append(row | {"champion_accuracy": known})
    return out


def train_s_per_row(row: dict[str, Any]) -> float | None:
    """The train step's seconds per row trained: what the load makes of the same work (the arms
    run side by side, so a ratio near 1 says the wall-time ratios are the rows', not the load's)."""
    if row["train_wall_s"] is None or not row["n_examples"]:
        return None
    return row["train_wall_s"] / row["n_examples"]


def round_zero_accuracy(rows: list[dict[str, Any]]) -> float | None:
    """The round-0 champion's held-out accuracy: the first evaluated round's champion."""
    return next(
        (
            r["sandbox_accuracy_champion"]
            for r in rows
            if r["sandbox_accuracy_champion"] is not None
        ),
        None,
    )


def window_size(n_rounds: int) -> int:
    """Rounds averaged at the start and at the end: WINDOW, or half of a shorter run."""
    return min(WINDOW, max(1, n_rounds // 2))


def window_mean(rows: list[dict[str, Any]], key: str, first: int, last: int) -> float | None:
    """The mean of `key` over rounds `first`..`last` (rows without a value left out)."""
    values = [r[key] for r in rows if first <= r["round_id"] <= last and r[key] is not None]
    return statistics.fmean(values) if values else None


def slope_per_round(rows: list[dict[str, Any]], key: str) -> float | None:
    """Least-squares slope of `key` against the round id (units per round); None under 2 rounds."""
    points = [(r["round_id"], r[key]) for r in rows if r[key] is not None]
    if len(points) < 2:
        return None
    return statistics.linear_regression(*zip(*points, strict=True)).slope


def ratio(value: float | None, peer: float | None) -> float | None:
    return None if value is None or not peer else value / peer


def arm_figures(rows: list[dict[str, Any]], n_rounds: int) -> dict[str, Any]:
    """One arm's summary: walls at the start and the end, slopes, rows trained, accuracies."""
    rows = [r | {"train_s_per_row": train_s_per_row(r)} for r in with_champion_accuracy(rows)]
    window = window_size(n_rounds)
    first, last = (1, window), (n_rounds - window + 1, n_rounds)
    final = rows[-1] if rows else {}
    return {
        "n_rounds_done": sum(r["status"] == "done" for r in rows),
        "round_wall_s_first": window_mean(rows, "round_wall_s", *first),
        "round_wall_s_last": window_mean(rows, "round_wall_s", *last),
        "train_wall_s_first": window_mean(rows, "train_wall_s", *first),
        "train_wall_s_last": window_mean(rows, "train_wall_s", *last),
        "round_wall_slope_s": slope_per_round(rows, "round_wall_s"),
        "train_wall_slope_s": slope_per_round(rows, "train_wall_s"),
        "train_s_per_row_last": window_mean(rows, "train_s_per_row", *last),
        "rows_trained_last": final.get("n_examples"),
        "earlier_rows_available_last": final.get("n_earlier_available"),
        "accuracy_round0": round_zero_accuracy(rows),
        "accuracy_final": final.get("champion_accuracy"),
        "n_promoted": sum(r["decision"] == "promote" for r in rows),
        "rounds": rows,
    }


COMPARED = (
    "round_wall_s_last",
    "train_wall_s_last",
    "round_wall_slope_s",
    "train_wall_slope_s",
    "train_s_per_row_last",
    "rows_trained_last",
)


def comparison(capped: dict[str, Any], uncapped: dict[str, Any]) -> dict[str, Any]:
    """Each compared figure of the capped arm as a ratio to the uncapped one, and the final
    accuracy's difference in points (capped minus uncapped)."""
    ratios = {f"{key}_ratio": ratio(capped[key], uncapped[key]) for key in COMPARED}
    a, b = capped["accuracy_final"], uncapped["accuracy_final"]
    points = None if a is None or b is None else 100 * (a - b)
    return ratios | {"accuracy_final_points_capped_minus_uncapped": points}


def cell(value: float | int | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_table(figures: dict[str, dict[str, Any]]) -> None:
    """Per round, both arms side by side: round and train wall, rows trained, accuracy."""
    print("round | " + " | ".join(f"{arm}: round s  train s  rows (earlier)  acc" for arm in ARMS))
    by_round = {arm: {r["round_id"]: r for r in figures[arm]["rounds"]} for arm in ARMS}
    for round_id in sorted(set(by_round[ARMS[0]]) | set(by_round[ARMS[1]])):
        cells = []
        for arm in ARMS:
            r = by_round[arm].get(round_id)
            if r is None:
                cells.append(" " * 40)
                continue
            rows = f"{cell(r['n_examples'], 'd')} ({cell(r['n_earlier'], 'd')})"
            cells.append(
                f"{cell(r['round_wall_s'], '8.1f')} {cell(r['train_wall_s'], '8.1f')} "
                f"{rows:>15} {cell(r['champion_accuracy'], '5.1%')}"
            )
        print(f"{round_id:>5} | " + " | ".join(cells))


def print_summary(figures: dict[str, dict[str, Any]], compared: dict[str, Any], n: int) -> None:
    window = window_size(n)
    last = f"{n - window + 1}-{n}"
    print(f"{'':<28}" + "".join(f"{arm:>10}" for arm in ARMS) + "  capped/uncapped")
    lines = [
        (f"round wall s, rounds 1-{window}", "round_wall_s_first", ".1f"),
        (f"round wall s, rounds {last}", "round_wall_s_last", ".1f"),
        ("round wall slope, s/round", "round_wall_slope_s", ".2f"),
        (f"train wall s, rounds 1-{window}", "train_wall_s_first", ".1f"),
        (f"train wall s, rounds {last}", "train_wall_s_last", ".1f"),
        ("train wall slope, s/round", "train_wall_slope_s", ".2f"),
        (f"train s per row, rounds {last}", "train_s_per_row_last", ".3f"),
        ("rows trained, last round", "rows_trained_last", "d"),
        ("champion accuracy, round 0", "accuracy_round0", ".1%"),
        ("champion accuracy, final", "accuracy_final", ".1%"),
    ]
    for label, key, fmt in lines:
        values = "".join(f"{cell(figures[arm][key], fmt):>10}" for arm in ARMS)
        ratio_cell = cell(compared.get(f"{key}_ratio"), ".2f")
        print(f"{label:<28}{values}  {ratio_cell if key in COMPARED else ''}")
    points = compared["accuracy_final_points_capped_minus_uncapped"]
    print(f"final accuracy, capped minus uncapped: {cell(points, '+.1f')} points")


def run_env(run_dir: Path) -> dict[str, str]:
    """An arm's environment: its own Prefect home under `run_dir`, a patient temporary server
    (a busy machine needs more than 20 s), one BLAS thread."""
    prefect_home = run_dir / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    return os.environ | {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "OMP_NUM_THREADS": "1",
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--slice-rounds", type=int, default=5, help="rounds per flywheel run")
    parser.add_argument("--replay-rows", type=int, default=80, help="the capped arm's cap")
    parser.add_argument("--slice-size", type=int, default=30, help="prompts battled per round")
    parser.add_argument("--eval-size", type=int, default=100, help="held-out prompts")
    parser.add_argument("--stages", default="dpo", help="schedule.stages, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="training.cpu_threads")
    parser.add_argument("--workdir", default="/tmp/bench-replay")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: the figures of the rounds both arms have done in --workdir",
    )
    args = parser.parse_args()
    if args.rounds < 2 or args.replay_rows < 0 or args.slice_rounds < 1:
        parser.error(
            "--rounds must be at least 2 (first and last rounds compared), --replay-rows at "
            "least 0 and --slice-rounds at least 1"
        )
    return args


def run_arms(args: argparse.Namespace, workdir: Path) -> list[float]:
    """Both arms' configs written, then their rounds run slice by slice, side by side; the
    1-minute load average after each slice."""
    base = yaml.safe_load(Path(args.config).read_text())
    config_paths = {}
    for arm in ARMS:
        run_dir = workdir / arm
        run_dir.mkdir(parents=True, exist_ok=True)
        config_paths[arm] = run_dir / "config.yaml"
        config_paths[arm].write_text(yaml.safe_dump(arm_config(base, arm, run_dir, args)))
    loads = []
    for end in slice_ends(args.rounds, args.slice_rounds):
        slice_started = time.monotonic()
        statuses = run_slice_side_by_side(config_paths, end)
        loads.append(round(os.getloadavg()[0], 2))
        print(
            f"rounds up to {end} in {time.monotonic() - slice_started:.0f} s, exit {statuses}, "
            f"load {loads[-1]}",
            flush=True,
        )
        failed = [arm for arm, status in statuses.items() if status != 0]
        if failed:
            logs = ", ".join(str(workdir / arm / "run.log") for arm in failed)
            raise SystemExit(f"flywheel run failed for {', '.join(failed)}; see {logs}")
    return loads


def run_settings(capped_config_path: Path) -> dict[str, Any]:
    """The settings the arms ran with, read back from the capped arm's config (the same in a
    report-only run as in the run it reports)."""
    config = yaml.safe_load(capped_config_path.read_text())
    return {
        "replay_rows": config["training"]["mining"]["replay_rows"],
        "slice_size": config["prompts"]["slice_size"],
        "eval_size": config["prompts"]["eval_size"],
        "stages": config["schedule"]["stages"],
        "seed": config["training"]["seed"],
        "threads": config["training"]["cpu_threads"],
    }


def rounds_done_by_both(rows_by_arm: dict[str, list[dict[str, Any]]]) -> int:
    """The last round id up to which every arm has finished every round (0: none)."""
    done = []
    for rows in rows_by_arm.values():
        n = 0
        for row in rows:
            if row["round_id"] != n + 1 or row["status"] != "done":
                break
            n += 1
        done.append(n)
    return min(done)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    workdir = Path(args.workdir).resolve()
    loads = [] if args.report_only else run_arms(args, workdir)
    rows_by_arm = {arm: round_rows(workdir / arm / "flywheel.duckdb") for arm in ARMS}
    n_rounds = rounds_done_by_both(rows_by_arm)
    if n_rounds < 2:
        raise SystemExit(f"{workdir}: under 2 rounds done by both arms; run without --report-only")
    figures = {
        arm: arm_figures([r for r in rows if r["round_id"] <= n_rounds], n_rounds)
        for arm, rows in rows_by_arm.items()
    }
    compared = comparison(figures["capped"], figures[PEER])
    print_table(figures)
    print_summary(figures, compared, n_rounds)
    result = {
        "benchmark": "bench_replay",
        "config": None if args.report_only else args.config,  # the arms' configs are in workdir
        "rounds": n_rounds,
        **run_settings(workdir / "capped" / "config.yaml"),
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_after_each_run": loads,
        "peer": PEER,
        "capped_vs_uncapped": compared,
        "arms": figures,
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
