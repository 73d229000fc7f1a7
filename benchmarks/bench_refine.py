"""The refine SFT rule against Arena Learning's plain rule, on the same battles.

Round 1 of a demo-like config (paths moved to a scratch directory) is battled once: the
round-0 student answers the slice, the references answer, the judge judges both orders. The
warehouse is then copied twice, and each copy is mined by one rule (`training.mining.sft_rule`
arena: the winning reference's answer is the target; refine: the winning reference corrects
the champion's losing answer) and trains one SFT candidate from the same champion with the
same hyperparameters, seed and `training.cpu_threads`. Each candidate answers the held-out
eval prompts (greedy), scored by the sandbox checkers (`evaluators/skills.py`).

    python benchmarks/bench_refine.py [--config configs/demo.yaml] [--workdir DIR]
        [--cpu-threads 2] [--student DIR] [--refine-with NAME]

`--workdir` keeps the battled warehouse (`battled.duckdb`): a second run with the same
directory reuses it and only mines, trains and scores again. `--student` reuses a built
round-0 student checkpoint (else it comes from the student cache or is built, ~6 min).
Prints per rule: SFT examples, share of targets the checkers accept, held-out accuracy; the
ratio refine / arena; and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

RULES = ("arena", "refine")
ROUND_ID = 1


def scratch_config(args: argparse.Namespace, workdir: Path, rule: str | None) -> Any:
    """The config with every path under `workdir` (`workdir/<rule>` for a rule's copy)."""
    from flywheel.config import parse_config

    data = yaml.safe_load(Path(args.config).read_text())
    home = workdir / rule if rule else workdir
    data["warehouse"]["path"] = str(home / "flywheel.duckdb")
    data["student"]["path"] = args.student or str(workdir / "student")
    data["training"]["output_dir"] = str(home / "models")
    data["training"]["cpu_threads"] = args.cpu_threads
    mining = data["training"].setdefault("mining", {})
    mining["sft_rule"] = rule or "arena"
    mining["refine_with"] = args.refine_with
    data["schedule"]["rounds"] = 1
    return parse_config(data, f"{args.config} (bench copy)")


def battle_round_one(config: Any) -> dict[str, float]:
    """Round 0's student registered, pool and eval set drawn, then round 1's answers and
    judged battles, as the round's first three steps make them; seconds per part."""
    from flywheel.flows.round import start_round
    from flywheel.flows.sandbox_pool import fill_sandbox_pool
    from flywheel.llm.checkpoints import is_checkpoint
    from flywheel.pool.eval_set import ensure_eval_split
    from flywheel.tasks.answer import answer_prompts
    from flywheel.tasks.battle_plan import train_battle_pairs
    from flywheel.tasks.draw import draw_round_slice
    from flywheel.tasks.judge import judge_battles
    from flywheel.warehouse.lifecycle import register_base_model

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if not is_checkpoint(config.student.path):
        from flywheel.sandbox.student import build_student

        build_student(config)
    register_base_model(config.warehouse, config.student.path)
    fill_sandbox_pool(config)
    ensure_eval_split(config)
    seconds["prepare_s"] = time.perf_counter() - started
    started = time.perf_counter()
    champion = start_round(config, ROUND_ID, "sft")
    prompt_ids = draw_round_slice(config, ROUND_ID)
    answer_prompts(
        config,
        ROUND_ID,
        prompt_ids,
        champion_id=champion.version_id,
        champion_path=champion.checkpoint_path,
    )
    pairs = train_battle_pairs(config, ROUND_ID, prompt_ids, champion.version_id)
    judge_battles(config, ROUND_ID, pairs, "train")
    seconds["battle_s"] = time.perf_counter() - started
    return seconds


def target_accuracy(config: Any) -> float | None:
    """Share of the round's SFT targets the checkers accept (None: none checkable)."""
    from flywheel.evaluators.skills import check_answer
    from flywheel.warehouse.store import connect_warehouse

    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            "select p.prompt_text, s.target_text from v_sft_data as s "
            "join prompts as p using (prompt_id) where s.round_id = ?",
            [ROUND_ID],
        ).fetchall()
    verdicts = [v for v in (check_answer(q, t) for q, t in rows) if v is not None]
    return sum(verdicts) / len(verdicts) if verdicts else None


def train_and_score(config: Any) -> dict[str, Any]:
    """Mine by the config's SFT rule, train the SFT candidate, and score it on held-out."""
    from flywheel.pool.eval_set import eval_prompt_ids
    from flywheel.tasks.answer import answer_as_student
    from flywheel.tasks.evaluate import heldout_accuracy
    from flywheel.tasks.mine import mine_round
    from flywheel.tasks.train import run_training_stage
    from flywheel.warehouse.lifecycle import recorded_champion

    started = time.perf_counter()
    mined = mine_round(config, ROUND_ID, "sft")
    mine_s = time.perf_counter() - started
    champion = recorded_champion(config.warehouse, ROUND_ID)
    started = time.perf_counter()
    trained = run_training_stage(config, ROUND_ID, "sft", champion)
    train_s = time.perf_counter() - started
    if trained.candidate is None or trained.candidate_path is None:
        raise RuntimeError(
            f"the {config.training.mining.sft_rule} rule trained no candidate: {trained.reason}"
        )
    eval_ids = eval_prompt_ids(config)
    for version_id, path in (
        (trained.candidate, trained.candidate_path),
        (champion.version_id, champion.checkpoint_path),
    ):
        answer_as_student(config, ROUND_ID, eval_ids, version_id, path)
    refined = mined.refine
    return {
        "n_sft": mined.n_total["sft"],
        "n_without_target": refined.n_without_target if refined else 0,
        "target_accuracy": target_accuracy(config),
        "accuracy": heldout_accuracy(config, trained.candidate),
        "champion_accuracy": heldout_accuracy(config, champion.version_id),
        "n_eval": len(eval_ids),
        "mine_s": mine_s,
        "train_s": train_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--workdir", default=None, help="scratch directory (kept when given)")
    parser.add_argument("--cpu-threads", type=int, default=2, help="training.cpu_threads")
    parser.add_argument("--student", default=None, help="a built round-0 student checkpoint")
    parser.add_argument(
        "--refine-with", default=None, help="training.mining.refine_with (default: the winner)"
    )
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-refine-"))
    workdir.mkdir(parents=True, exist_ok=True)

    from flywheel.config import resolve_sandbox_endpoints
    from flywheel.sandbox.server import start_sandbox

    base = scratch_config(args, workdir, None)
    battled = workdir / "battled.duckdb"
    seconds: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    with start_sandbox(base.sandbox) as server:
        if not battled.exists():
            seconds = battle_round_one(resolve_sandbox_endpoints(base, server.base_url))
            shutil.copyfile(base.warehouse.path, battled)
        for rule in RULES:
            config = scratch_config(args, workdir, rule)
            shutil.rmtree(workdir / rule, ignore_errors=True)
            (workdir / rule).mkdir(parents=True)
            shutil.copyfile(battled, config.warehouse.path)
            results[rule] = train_and_score(resolve_sandbox_endpoints(config, server.base_url))

    arena, refine = results["arena"], results["refine"]
    ratio = refine["accuracy"] / arena["accuracy"] if arena["accuracy"] else None
    corrector = args.refine_with or "the battle's winner"
    print(
        f"same battles: {battled} (round 1 of {args.config}, cpu_threads {args.cpu_threads}); "
        f"refine corrects with {corrector}"
    )
    print(f"champion v0 held-out accuracy: {arena['champion_accuracy']:.3f} on {arena['n_eval']}")
    for rule in RULES:
        r = results[rule]
        targets = "-" if r["target_accuracy"] is None else f"{r['target_accuracy']:.3f}"
        print(
            f"{rule:>6}: {r['n_sft']} SFT examples ({r['n_without_target']} without a target), "
            f"targets right {targets}, candidate held-out accuracy {r['accuracy']:.3f} "
            f"(mine {r['mine_s']:.1f} s, train {r['train_s']:.1f} s)"
        )
    print(f"refine / arena held-out accuracy: {ratio:.3f}" if ratio else "ratio: -")
    line = {
        "bench": "refine",
        "config": args.config,
        "cpu_threads": args.cpu_threads,
        "refine_with": args.refine_with,
        "champion_accuracy": arena["champion_accuracy"],
        "n_eval": arena["n_eval"],
        **{
            f"{rule}_{k}": v
            for rule in RULES
            for k, v in results[rule].items()
            if k not in ("n_eval", "champion_accuracy")
        },
        "refine_over_arena_accuracy": ratio,
        **seconds,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
