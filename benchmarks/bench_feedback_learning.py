"""Learning from users' feedback alone, beside learning from battles alone, on the same budget.

A copy of `--config` (configs/smoke.yaml by default: the sandbox references and judge; the
shipped round-0 student, through `sandbox.task_difficulty: 1`) with its own warehouse and models
under `--workdir`:

1. one round of `flywheel run` (stage dpo): the round-0 student answers its slice, the sandbox
   references and judge battle, and the round mines its battle rows;
2. `--days` days of sandbox traffic (as `flywheel sandbox traffic --day N --model champion`:
   the simulated users chat with the round-0 student itself and leave thumbs, scores, votes and
   corrections, in the five log formats), each read as by `flywheel logs add` (and, with
   `--classify`, `flywheel logs classify`: implicit feedback by the sandbox judge);
3. the round's mining again (sft, dpo, kto): now also the feedback rows (positive -> SFT,
   correction -> SFT target, labelled -> KTO, same-prompt liked/disliked -> DPO pair);
4. per stage (sft, kto, dpo) the stage trains the round-0 student on battle rows alone,
   feedback rows alone, or half and half (`training.mix: {stage: {battle: 1}}`, `{feedback: 1}`,
   `{battle: 0.5, feedback: 0.5}`), every arm capped at the same `--max-steps` (the same budget:
   batch size and steps are the stage's), in a fresh child process per arm and seed;
5. held-out accuracy by the sandbox's checkers on the eval prompts (greedy answers).

Also printed: what the mined feedback rows are by the traffic's ground truth (a desirable KTO
row whose answer was wrong came from a user who liked a wrong answer, such as the planted
flatterers).

Prints a table (rows, accuracy per seed and its mean, change against the round-0 student) and
one JSON line with every figure. One round: the traffic is the round-0 student's, so a second
round would need new traffic answered by the new champion (not run here).

    python benchmarks/bench_feedback_learning.py [--seeds 0,1,2] [--max-steps 20] [--days 1]
        [--conversations 200] [--workdir /tmp/bench-feedback] [--config configs/smoke.yaml]
        [--threads 2] [--classify]
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

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learning import child_env, run_seed  # noqa: E402  (`flywheel run` in a subprocess)
from bench_stages import eval_prompts, greedy, round_zero_champion  # noqa: E402
from bench_training import run_child  # noqa: E402  (one arm in a child process)

ROUND_ID = 1
STAGES = ("sft", "kto", "dpo")
MIXES = {  # arm suffix -> training.mix of the stage
    "battle": {"battle": 1.0},
    "feedback": {"feedback": 1.0},
    "mixed": {"battle": 0.5, "feedback": 0.5},
}
ARMS = {f"{stage}-{name}": (stage, name) for stage in STAGES for name in MIXES}


def bench_config(source: Path, workdir: Path, threads: int) -> Path:
    """`source` with its files under `workdir`, the shipped student's tasks, one dpo round,
    KTO on DPO's settings, logged prompts into the pool."""
    config = yaml.safe_load(source.read_text())
    config["warehouse"]["path"] = str(workdir / "flywheel.duckdb")
    config["student"]["path"] = str(workdir / "student")
    config["sandbox"]["task_difficulty"] = 1  # the shipped student's recipe: round 0 is copied
    training = config["training"]
    training["output_dir"] = str(workdir / "models")
    training["cpu_threads"] = threads
    shared = {
        k: v for k, v in training["dpo"].items() if k not in ("chosen_nll_weight", "reference")
    }
    training["kto"] = dict(shared)
    config["schedule"]["stages"] = ["dpo"]
    config.setdefault("logs", {})["add_prompts"] = True
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def round_done(config_path: Path) -> bool:
    """Whether the workdir's warehouse holds a finished round 1 (a rerun reuses it)."""
    from flywheel.config import load_config
    from flywheel.warehouse.store import connect_warehouse

    config = load_config(config_path)
    if not Path(config.warehouse.path).exists():
        return False
    with connect_warehouse(config.warehouse) as con:
        done = con.execute(
            "select count(*) from rounds where round_id = ? and status = 'done'", [ROUND_ID]
        )
        return bool(done.fetchone()[0])


def flywheel(config_path: Path, log: Path, *args: str) -> None:
    """One `flywheel ...` command; its output appended to `log`; a failure stops the bench."""
    with log.open("a") as out:
        status = subprocess.call(
            [sys.executable, "-m", "flywheel.flows.cli", *args, "--config", str(config_path)],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if status != 0:
        raise SystemExit(f"flywheel {' '.join(args)} failed (exit {status}); see {log}")


def add_traffic(config_path: Path, workdir: Path, days: int, n_conv: int, classify: bool) -> None:
    """`days` days of the round-0 student's traffic, each read into the warehouse (in this
    process: `flywheel sandbox traffic --model champion` and `flywheel logs add`)."""
    from flywheel.config import load_config
    from flywheel.pool.logs_ingest import add_log_files
    from flywheel.sandbox.traffic_day import CHAMPION, write_traffic_day

    # the simulated users' ids are hashed like real ones; a fixed salt for the bench's users
    os.environ.setdefault("FLYWHEEL_USER_SALT", "bench-feedback-learning (simulated users)")
    config = load_config(config_path)
    for day in range(1, days + 1):
        out = workdir / "logs" / f"day-{day:03d}"
        traffic = write_traffic_day(config.sandbox, day, out, n_conv, model=CHAMPION, config=config)
        print(traffic.summary(), flush=True)
        files = sorted(p for p in out.iterdir() if p.is_file())
        print(add_log_files(config, files).summary(), flush=True)
        if classify:
            flywheel(config_path, workdir / "traffic.log", "logs", "classify")


def mined_counts(config: Any) -> dict[str, dict[str, int]]:
    """Rows per kind and origin the round holds (what the arms train on)."""
    from flywheel.warehouse.store import connect_warehouse

    query = """
        select 'sft' as kind, origin, count(*) from v_sft_data where round_id = ? group by all
        union all
        select 'dpo', origin, count(*) from v_dpo_pairs where round_id = ? group by all
        union all
        select 'kto', origin, count(*) from v_kto_data where round_id = ? group by all
    """
    counts: dict[str, dict[str, int]] = {}
    with connect_warehouse(config.warehouse) as con:
        for kind, origin, n in con.execute(query, [ROUND_ID] * 3).fetchall():
            counts.setdefault(kind, {})[origin] = n
    return counts


def feedback_labels(config: Any) -> dict[str, int]:
    """The logged feedback by source and label (what the mining read)."""
    from flywheel.warehouse.store import connect_warehouse

    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            "select source || ':' || coalesce(label, 'none'), count(*) from feedback group by 1"
        ).fetchall()
    return dict(sorted(rows))


TRUTH_QUERIES = {  # what the mined feedback rows are, by the traffic's ground truth: a label,
    # and whether the answer it names was right ({answer} in the label: the answer corrected or
    # rejected; else the row's own answer)
    "kto": """
        select case when k.label then 'desirable' else 'undesirable' end, t.correct, count(*)
        from kto_examples as k
        join log_conversations as c using (conversation_id)
        left join truth as t on t.external_id = c.external_id and t.turn_index = k.turn_index
        where k.source = 'feedback' group by all order by all
    """,
    "sft": """
        select
            case when s.target_source = 'correction' then 'correction of a {answer} answer'
                 else s.target_source end,
            t.correct,
            count(*)
        from sft_examples as s
        join log_conversations as c using (conversation_id)
        left join truth as t on t.external_id = c.external_id and t.turn_index = s.turn_index
        where s.origin = 'feedback' group by all order by all
    """,
    "dpo": """
        select
            case when p.chosen_source = 'correction'
                 then 'correction (' || cr.log_format || ') over the {answer} answer'
                 else 'liked (' || cc.log_format || ', '
                     || case when tc.correct then 'right' when not tc.correct then 'wrong'
                        else 'unknown' end || ') over a {answer} answer' end,
            tr.correct,
            count(*)
        from preference_pairs as p
        join log_conversations as cc on cc.conversation_id = p.chosen_conversation_id
        join log_conversations as cr on cr.conversation_id = p.rejected_conversation_id
        left join truth as tc
            on tc.external_id = cc.external_id and tc.turn_index = p.chosen_turn_index
        left join truth as tr
            on tr.external_id = cr.external_id and tr.turn_index = p.rejected_turn_index
        where p.kind = 'dpo' and p.origin = 'feedback' group by all order by all
    """,
}


def truth_key(label: str, right: bool | None) -> str:
    verdict = "unknown" if right is None else "right" if right else "wrong"
    return label.replace("{answer}", verdict) if "{answer}" in label else f"{label} {verdict}"


def label_truth(config: Any, workdir: Path) -> dict[str, dict[str, int]]:
    """Per kind and label, how many mined feedback rows answered right, wrong, or cannot be
    told (an arena's second model: the traffic keeps the truth of the first's answers only)."""
    import duckdb

    files = sorted(str(p) for p in workdir.glob("logs/*/ground-truth/*.jsonl"))
    con = duckdb.connect(config.warehouse.path, read_only=True)
    try:
        con.execute("create temp table truth as select * from read_json_auto(?)", [files])
        return {
            kind: {truth_key(label, right): n for label, right, n in con.execute(query).fetchall()}
            for kind, query in TRUTH_QUERIES.items()
        }
    finally:
        con.close()


def train_arm(args: argparse.Namespace) -> dict[str, Any]:
    """One arm and seed, in this (child) process: the candidate's path, rows, steps, wall."""
    from bench_stages import arm_settings

    from flywheel.config import load_config
    from flywheel.llm.stages.registry import stage_named
    from flywheel.llm.stages.spec import StageRun
    from flywheel.tasks.mine import training_mix
    from flywheel.tasks.train import stage_setup

    config = load_config(args.base)
    stage_name, mix_name = ARMS[args.one]
    mix = {stage_name: MIXES[mix_name]}
    mixed = config.model_copy(update={"training": config.training.model_copy(update={"mix": mix})})
    stage = stage_named(stage_name)
    rows = training_mix(mixed, ROUND_ID, stage_name)
    out = Path(args.work) / "arms" / f"{args.one}-s{args.seed}"
    run = StageRun(
        base_path=round_zero_champion(config),
        rows=rows.rows,
        out_path=out,
        settings=arm_settings(config, stage, None, args.max_steps),
        seed=args.seed,
        setup=stage_setup(config),
        max_completion_tokens=config.student.max_new_tokens,
    )
    result = stage.train(run)
    return {
        "path": str(result.output_path),
        "n_rows": len(run.rows),
        "mix": rows.mix.describe() if rows.mix else None,
        "n_steps": result.metrics.get("n_steps"),
        "wall_s": result.wall_s,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
    }


def accuracy(config: Any, evals: list[tuple[str, Any]], path: str) -> float | None:
    """Held-out accuracy by the sandbox's checkers of the checkpoint's greedy answers."""
    from flywheel.tasks.evaluate import checker_accuracy

    answers = greedy(config, path, evals)
    return checker_accuracy([(text, a) for (text, _), a in zip(evals, answers, strict=True)])


def print_table(
    per_arm: dict[str, list[dict]], champion_accuracy: float | None, n_eval: int
) -> None:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    print(f"round-0 student: held-out accuracy {cell(champion_accuracy)} on {n_eval} eval prompts")
    print(
        f"{'arm':<13} {'rows':>5} {'steps':>5} {'accuracy per seed':<24} {'mean':>6} {'change':>7}"
    )
    for arm, runs in per_arm.items():
        accuracies = [r["heldout_accuracy"] for r in runs]
        known = [a for a in accuracies if a is not None]
        mean = statistics.fmean(known) if known else None
        change = None if mean is None or champion_accuracy is None else mean - champion_accuracy
        seeds = " ".join(cell(a) for a in accuracies)
        steps = runs[0]["n_steps"] if runs else None
        print(
            f"{arm:<13} {runs[0]['n_rows']:>5} {steps if steps is not None else '-':>5} "
            f"{seeds:<24} {cell(mean):>6} {'-' if change is None else f'{change:+.3f}':>7}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "smoke.yaml"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/bench-feedback")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classify", action="store_true", help="also implicit feedback")
    parser.add_argument("--arms", default=",".join(ARMS), help="a subset, comma-separated")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(train_arm(args)), flush=True)
        return 0
    from transformers.utils import logging as hf_logging

    from flywheel.config import load_config
    from flywheel.tasks.mine import mine_round

    hf_logging.disable_progress_bar()
    started = time.monotonic()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = bench_config(Path(args.config), workdir, args.threads)
    if round_done(config_path):
        print(f"round 1 (the battles) already in {workdir}: reused", flush=True)
    else:
        status, wall_s = run_seed(config_path, 1, workdir / "round-1.log")
        if status != 0:
            raise SystemExit(f"flywheel run failed (exit {status}); see {workdir}/round-1.log")
        print(f"round 1 (the battles) in {wall_s:.0f} s", flush=True)
    traffic_started = time.monotonic()
    add_traffic(config_path, workdir, args.days, args.conversations, args.classify)
    config = load_config(config_path)
    for stage in STAGES:
        mine_round(config, ROUND_ID, stage)
    counts, labels = mined_counts(config), feedback_labels(config)
    truth = label_truth(config, workdir)
    print(
        f"traffic and mining in {time.monotonic() - traffic_started:.0f} s; feedback {labels}; "
        f"mined rows {counts}; mined feedback rows by the traffic's truth {truth}",
        flush=True,
    )
    seeds = [int(s) for s in args.seeds.split(",")]
    evals = eval_prompts(config)
    champion_accuracy = accuracy(config, evals, round_zero_champion(config))
    per_arm: dict[str, list[dict]] = {}
    for arm in args.arms.split(","):
        stage, mix_name = ARMS[arm]
        if any(counts.get(stage, {}).get(origin, 0) < 2 for origin in MIXES[mix_name]):
            print(f"{arm}: fewer than 2 rows of an origin, not trained", flush=True)
            continue
        per_arm[arm] = []
        for seed in seeds:
            options = [f"--max-steps={args.max_steps}", f"--seed={seed}"]
            trained = run_child(__file__, arm, config_path, str(workdir), options)
            figures = trained | {"heldout_accuracy": accuracy(config, evals, trained["path"])}
            per_arm[arm].append({"seed": seed, **figures})
            print(
                f"{arm} seed {seed}: {figures['n_rows']} rows, {figures['n_steps']} steps, "
                f"accuracy {figures['heldout_accuracy']}, {figures['wall_s']:.1f} s",
                flush=True,
            )
    print_table(per_arm, champion_accuracy, len(evals))
    result = {
        "benchmark": "bench_feedback_learning",
        "config": args.config,
        "seeds": seeds,
        "max_steps": args.max_steps,
        "days": args.days,
        "conversations_per_day": args.conversations,
        "classify": args.classify,
        "n_eval_prompts": len(evals),
        "feedback": labels,
        "mined": counts,
        "mined_feedback_truth": truth,
        "champion_heldout_accuracy": champion_accuracy,
        "runs": per_arm,
        "wall_s": time.monotonic() - started,
    }
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
