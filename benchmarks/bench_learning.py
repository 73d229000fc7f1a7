"""Learning across seeds: `flywheel run --rounds N` on the demo config, once per seed.

For each seed S the demo config is copied with its run seeds set to S (`prompts.seed`: the eval
draw and the slices; `sandbox.seed`: every reference and judge reply; `training.seed`;
`evaluation.seed`: the bootstraps), its own warehouse and model folder under `--workdir`, and a
fixed `training.cpu_threads` (so that each seed's run is reproducible). The round-0 student
is the same for every seed (`student.seed` is left alone: it stands for the checkpoint a user
brings), copied from the student cache after the first build. Each run is a real `flywheel run`
in a subprocess.

From each warehouse it reads, per round: the stage, the held-out accuracy of candidate and
champion (the sandbox's checkers, not the judge), the decision and the round's wall time; and,
prompt by prompt, on how many held-out prompts only the candidate was right and on how many only
the champion was, with a one-sided sign test of the candidate's lead (checker_pairs.py). A
promotion is wrong when the promoted candidate is not more accurate than the champion it
replaced; a keep is wrong when the candidate was more accurate by more than `--keep-tolerance`
(a gate that keeps a better model only costs a round; it is reported, not a failure). The peer
is the round-0 champion: each seed's gain is final minus round-0 accuracy, and the ratio is
final / round-0. Prints a table per seed and one JSON line with every figure.

`--stages sft,dpo,...` runs another schedule through the same bench: it replaces
`schedule.stages` in every seed's copy (cycled over the rounds, as `flywheel run` does; a stage
whose `training.<section>` the config leaves out trains on that section's defaults), and the JSON
line records the stages run and where they came from. `--report-only` runs nothing: it reads the
seeds' warehouses under `--workdir` as they are (seeds run as separate processes, a run cut short
or one still going; a warehouse a run holds open is retried until `--wait-s`) and prints the same
table and JSON line, each seed with the rounds it has finished.

A real pretrained student (configs/real-small.yaml: a GGUF `student.path`, fetched and converted
once per seed's run as `flywheel run` does) is slow on CPU: `--eval-size`, `--slice-size` and
`--max-steps` (a cap on every training section's steps) shrink each round, and the JSON line
records them.

    python benchmarks/bench_learning.py [--rounds 6] [--seeds 0,1,2] [--workdir /tmp/learning]
        [--config configs/demo.yaml] [--stages sft,rm+rl,dpo] [--pool-size 4000] [--report-only]
        [--eval-size N] [--slice-size N] [--max-steps N]
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
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from checker_pairs import discordant_prompts, sign_test_p  # noqa: E402

from flywheel.config import ConfigError, parse_config  # noqa: E402
from flywheel.llm.stages.registry import STAGE_NAMES, STAGES  # noqa: E402

GOAL_GAIN_POINTS = 35.0
GOAL_ROUND_S = 180.0


def parse_stages(text: str) -> list[str]:
    """`--stages sft,dpo,...` as a list of stage names; an unknown name is refused, naming the
    stages there are."""
    stages = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in stages if name not in STAGE_NAMES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(
            f"no training stage {', '.join(unknown) or '(empty list)'}; name stages of "
            f"{', '.join(STAGE_NAMES)}, comma-separated in round order, e.g. sft,rm+rl,dpo"
        )
    return stages


def student_path_in(run_dir: Path, student_path: str) -> Path:
    """Where a run's round-0 student lives: a GGUF file keeps its name (a known one is fetched
    from the flywheel cache and converted under the run's models, as `flywheel run` does), a
    sandbox student directory is `run_dir/student`, copied from the student cache."""
    if Path(student_path).suffix.lower() == ".gguf":
        return run_dir / Path(student_path).name
    return run_dir / "student"


def cap_training_steps(training: dict[str, Any], max_steps: int) -> None:
    """Every stage section's `max_steps` capped at `max_steps` (a section's own smaller cap is
    kept; a section the config leaves out gets the cap over its defaults)."""
    for key in (key for stage in STAGES for key in stage.sections):
        section = training.setdefault(key, {})
        own = section.get("max_steps", -1)
        section["max_steps"] = own if 0 < own < max_steps else max_steps


def seed_config(
    base: dict[str, Any],
    seed: int,
    run_dir: Path,
    cpu_threads: int,
    stages: list[str] | None = None,
    pool_size: int | None = None,
    sizes: dict[str, int | None] | None = None,
) -> dict:
    """The base config with every run seed set to `seed` and its own files under `run_dir`;
    `schedule.stages` replaced by `stages`, `prompts.sandbox_pool_size` by `pool_size`,
    `prompts.eval_size` / `slice_size` by `sizes` and every section's steps capped at
    `sizes["max_steps"]` where given."""
    config = json.loads(json.dumps(base))  # a deep copy of plain YAML data
    sizes = sizes or {}
    if stages is not None:
        config.setdefault("schedule", {})["stages"] = list(stages)
    if pool_size is not None:
        config["prompts"]["sandbox_pool_size"] = pool_size
    for key in ("eval_size", "slice_size"):
        if sizes.get(key) is not None:
            config["prompts"][key] = sizes[key]
    if sizes.get("max_steps"):
        cap_training_steps(config["training"], sizes["max_steps"])
    config["prompts"]["seed"] = seed
    config["sandbox"]["seed"] = seed
    config.setdefault("evaluation", {})["seed"] = seed
    config["training"]["seed"] = seed
    config["training"]["cpu_threads"] = cpu_threads
    config["training"]["output_dir"] = str(run_dir / "models")
    config["warehouse"]["path"] = str(run_dir / "flywheel.duckdb")
    config["student"]["path"] = str(student_path_in(run_dir, config["student"]["path"]))
    return config


def write_seed_configs(
    base: dict[str, Any],
    seeds: list[int],
    workdir: Path,
    cpu_threads: int,
    stages: list[str] | None,
    pool_size: int | None = None,
    sizes: dict[str, int | None] | None = None,
) -> tuple[dict[int, Path], list[str]]:
    """Each seed's config, checked as `flywheel run` checks it before any is written (a
    `ConfigError` names the field and the fix), written to `workdir/seed-S/config.yaml`; the
    paths by seed and the stages the schedule runs."""
    configs = {
        seed: seed_config(
            base, seed, workdir / f"seed-{seed}", cpu_threads, stages, pool_size, sizes
        )
        for seed in seeds
    }
    checked = {
        seed: parse_config(config, f"seed {seed}'s copy of --config")
        for seed, config in configs.items()
    }
    paths: dict[int, Path] = {}
    for seed, config in configs.items():
        paths[seed] = workdir / f"seed-{seed}" / "config.yaml"
        paths[seed].parent.mkdir(parents=True, exist_ok=True)
        paths[seed].write_text(yaml.safe_dump(config))
    return paths, list(checked[seeds[0]].schedule.stages)


def child_env() -> dict[str, str]:
    """The environment of a `python -m flywheel...` child run from the repo root: it imports
    the flywheel this interpreter's environment has (e.g. a frozen copy on PYTHONPATH), not the
    root's flywheel/ folder, which `python -m` would put first and mix with the editable
    install's working tree."""
    return os.environ | {"PYTHONSAFEPATH": "1"}


def run_seed(config_path: Path, rounds: int, log_path: Path) -> tuple[int, float]:
    """`flywheel run` on the seed's config; its exit status and wall time."""
    started = time.monotonic()
    with log_path.open("w") as log:
        status = subprocess.call(
            [
                sys.executable,
                "-m",
                "flywheel.flows.cli",
                "run",
                "--config",
                str(config_path),
                "--rounds",
                str(rounds),
            ],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return status, time.monotonic() - started


def round_rows(warehouse_path: Path) -> list[dict[str, Any]]:
    """Per round: stage, decision, both accuracies, the checkers' discordant prompts (only the
    candidate right, only the champion right) and the wall time, from the warehouse."""
    query = """
        select r.round_id, r.stage, r.status, r.wall_s, e.decision,
               e.sandbox_accuracy_candidate, e.sandbox_accuracy_champion,
               e.candidate as candidate_version, e.champion as champion_version
        from rounds as r
        left join evaluations as e using (round_id)
        qualify row_number() over (partition by r.round_id order by e.created_at desc) = 1
        order by r.round_id
    """
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        columns = [c[0] for c in con.execute(query).description]
        rows = [dict(zip(columns, row, strict=True)) for row in con.execute(query).fetchall()]
        for row in rows:
            versions = (row.pop("candidate_version"), row.pop("champion_version"))
            row["discordant"] = None if None in versions else discordant_prompts(con, *versions)
        return rows


def round_rows_when_free(warehouse_path: Path, wait_s: float) -> list[dict[str, Any]]:
    """`round_rows` of a warehouse that a running `flywheel run` may hold open (DuckDB lets no
    other process open it then), retried each second for up to `wait_s`; none before the run
    has made it."""
    if not warehouse_path.exists():
        return []
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return round_rows(warehouse_path)
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def seed_figures(rows: list[dict[str, Any]], keep_tolerance: float) -> dict[str, Any]:
    """Accuracy per round (the champion's after the decision), gain, wrong decisions."""
    accuracy_before = rows[0]["sandbox_accuracy_champion"] if rows else None
    per_round, wrong_promotions, wrong_keeps, promoted_stages = [], [], [], set()
    champion_accuracy = accuracy_before
    for row in rows:
        candidate, champion = row["sandbox_accuracy_candidate"], row["sandbox_accuracy_champion"]
        only_candidate, only_champion = row["discordant"] or (None, None)
        promoted = row["decision"] == "promote"
        if promoted:
            promoted_stages.add(row["stage"])
            champion_accuracy = candidate
            if candidate is None or champion is None or candidate <= champion:
                wrong_promotions.append(row["round_id"])
        elif (
            candidate is not None and champion is not None and candidate > champion + keep_tolerance
        ):
            wrong_keeps.append(row["round_id"])
        per_round.append(
            {
                "round": row["round_id"],
                "stage": row["stage"],
                "status": row["status"],
                "decision": row["decision"],
                "candidate": candidate,
                "champion_before": champion,
                "accuracy_after": champion_accuracy,
                "only_candidate_right": only_candidate,
                "only_champion_right": only_champion,
                "sign_test_p": None
                if row["discordant"] is None
                else sign_test_p(only_candidate, only_champion),
                "wall_s": row["wall_s"],
            }
        )
    final = champion_accuracy
    gain = None if final is None or accuracy_before is None else 100 * (final - accuracy_before)
    walls = [r["wall_s"] for r in per_round if r["wall_s"] is not None]
    return {
        "accuracy_round0": accuracy_before,
        "accuracy_final": final,
        "gain_points": None if gain is None else round(gain, 1),
        "ratio_final_to_round0": None if not accuracy_before else round(final / accuracy_before, 2),
        "wrong_promotions": wrong_promotions,
        "wrong_keeps": wrong_keeps,
        "stages_promoted": sorted(promoted_stages),
        "max_round_wall_s": max(walls) if walls else None,
        "rounds_done": sum(1 for r in per_round if r["status"] == "done"),
        "rounds": per_round,
    }


def mean_accuracy_by_round(by_seed: dict[str, dict[str, Any]]) -> list[float | None]:
    """Per round, the champion's accuracy after the decision, averaged over the seeds that have
    finished that round (done, or failed: the champion stays); None where none has."""
    n_rounds = max((len(f["rounds"]) for f in by_seed.values()), default=0)
    means: list[float | None] = []
    for index in range(n_rounds):
        values = [
            f["rounds"][index]["accuracy_after"]
            for f in by_seed.values()
            if index < len(f["rounds"])
            and f["rounds"][index]["status"] != "running"
            and f["rounds"][index]["accuracy_after"] is not None
        ]
        means.append(round(statistics.fmean(values), 4) if values else None)
    return means


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_table(seed: int, figures: dict[str, Any]) -> None:
    print(f"seed {seed}: round-0 accuracy {pct(figures['accuracy_round0'])}", file=sys.stderr)
    print(
        "round stage  decision candidate champion after  wall s  only +/-  sign p", file=sys.stderr
    )
    for r in figures["rounds"]:
        paired = "-" if r["sign_test_p"] is None else f"{r['sign_test_p']:.3f}"
        print(
            f"{r['round']:>5} {r['stage']:<6} {r['decision'] or r['status']:<8} "
            f"{pct(r['candidate']):>9} {pct(r['champion_before']):>8} {pct(r['accuracy_after']):>6}"
            f" {r['wall_s'] or 0:>6.0f} {r['only_candidate_right'] or 0:>5}/"
            f"{r['only_champion_right'] or 0:<3} {paired:>6}",
            file=sys.stderr,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workdir", default="/tmp/flywheel-learning")
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--keep-tolerance", type=float, default=0.02)
    parser.add_argument(
        "--stages",
        type=parse_stages,
        default=None,
        help="comma-separated stages replacing the config's schedule.stages (cycled over the "
        "rounds), e.g. sft,dpo,kto; default: the config's own",
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="prompts.sandbox_pool_size for every seed; default: the config's. Each round draws "
        "slice_size fresh prompts and decontamination against the eval set drops about a fifth "
        "of the pool, so the demo's 3000 fill four 400-prompt rounds: six need about 4000",
    )
    parser.add_argument("--eval-size", type=int, help="prompts.eval_size (default: the config's)")
    parser.add_argument("--slice-size", type=int, help="prompts.slice_size (each round's prompts)")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=0,
        help="cap on every training section's steps (a smaller own max_steps is kept); "
        "0: each section's own, as the config trains",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: read the seeds' warehouses under --workdir as they are",
    )
    parser.add_argument("--wait-s", type=float, default=120.0)
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.config).read_text())
    workdir = Path(args.workdir).resolve()
    load_before = os.getloadavg()[0]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.report_only:  # what the seeds ran with is in their written configs
        config_paths = {seed: workdir / f"seed-{seed}" / "config.yaml" for seed in seeds}
        base = yaml.safe_load(config_paths[seeds[0]].read_text())
        args.config, args.pool_size = str(config_paths[seeds[0]]), None
        args.cpu_threads = base["training"]["cpu_threads"]
        stages_run = base["schedule"]["stages"]
    else:
        try:
            sizes = {
                "eval_size": args.eval_size,
                "slice_size": args.slice_size,
                "max_steps": args.max_steps,
            }
            config_paths, stages_run = write_seed_configs(
                base, seeds, workdir, args.cpu_threads, args.stages, args.pool_size, sizes
            )
        except ConfigError as error:  # bad input: named with its fix, exit 2, nothing run
            print(f"bench_learning: {error}", file=sys.stderr)
            sys.exit(2)
    by_seed: dict[str, Any] = {}
    for seed, config_path in config_paths.items():
        run_dir = config_path.parent
        if args.report_only:
            rows = round_rows_when_free(run_dir / "flywheel.duckdb", args.wait_s)
            figures = seed_figures(rows, args.keep_tolerance)
        else:
            status, wall_s = run_seed(config_path, args.rounds, run_dir / "run.log")
            figures = seed_figures(round_rows(run_dir / "flywheel.duckdb"), args.keep_tolerance)
            figures |= {"exit_status": status, "run_wall_s": round(wall_s, 1)}
        print_table(seed, figures)
        by_seed[str(seed)] = figures
    summary = {
        "bench": "learning",
        "report_only": args.report_only,
        "rounds": args.rounds,
        "config": args.config,
        "stages": list(stages_run),
        "stages_from": "--stages" if args.stages else "config",
        "sandbox_pool_size": args.pool_size or base["prompts"].get("sandbox_pool_size"),
        "eval_size": base["prompts"].get("eval_size") if args.report_only else args.eval_size,
        "slice_size": base["prompts"].get("slice_size") if args.report_only else args.slice_size,
        "max_steps": None if args.report_only else args.max_steps,
        "seeds": seeds,
        "cpu_threads": args.cpu_threads,
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),
    } | across_seeds(by_seed, stages_run[: args.rounds])
    print(json.dumps(summary))


def across_seeds(by_seed: dict[str, dict[str, Any]], stages_run: list[str]) -> dict[str, Any]:
    """The seeds' figures together: mean accuracy per round, gains, wrong decisions, whether
    every stage run was promoted on every seed, the slowest round; each seed's own below."""
    gains = [f["gain_points"] for f in by_seed.values() if f["gain_points"] is not None]
    return {
        "accuracy_mean_by_round": mean_accuracy_by_round(by_seed),
        "gain_points_mean": round(statistics.fmean(gains), 1) if gains else None,
        "gain_points_min": min(gains) if gains else None,
        "gain_points_max": max(gains) if gains else None,
        "goal_gain_points": GOAL_GAIN_POINTS,
        "meets_gain_goal": bool(gains)
        and len(gains) == len(by_seed)
        and min(gains) >= GOAL_GAIN_POINTS,
        "wrong_promotions": sum(len(f["wrong_promotions"]) for f in by_seed.values()),
        "wrong_keeps": sum(len(f["wrong_keeps"]) for f in by_seed.values()),
        "every_stage_promoted_per_seed": all(
            len(f["stages_promoted"]) == len(set(stages_run)) for f in by_seed.values()
        ),
        "max_round_wall_s": max((f["max_round_wall_s"] or 0) for f in by_seed.values()),
        "goal_round_s": GOAL_ROUND_S,
        "by_seed": by_seed,
    }


if __name__ == "__main__":
    main()
