"""What a conversation A/B costs against a single-turn one, and whether it catches issue 37's
planted candidate: `evaluation.mode` single_turn and conversations side by side on the sandbox.

The pair (served by the sandbox as `student-{version}`): the champion v0 answers right
`--champion-accuracy` of the time; the candidate v1 answers right `--candidate-accuracy` of the
time but caves to every pushback and forgets the answer format on every follow-up. Each arm
runs the real evaluate path (tasks/evaluate.py: answer, judge, simulate, judge conversations,
decide) in a fresh warehouse against a fresh sandbox on the smoke config, so nothing is shared
between arms. For each arm: the decision, the win rate with its interval, the requests the
sandbox received (answers, simulator turns, judge games), the wall time. Then the ratios
(requests per evaluated conversation over requests per evaluated prompt; wall time of the
conversation arm over the single-turn arm), the conversation judge's agreement with the
sandbox's ground truth per persona kind (v_conversation_calibration), and the simulated
users' realism figures (v_sim_realism), and one JSON line with every figure.

    python benchmarks/bench_conversations.py [--prompts 40] [--max-turns 3] [--seed 0]
        [--workdir /tmp/flywheel-conversations]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flywheel.config import Config, parse_config, resolve_sandbox_endpoints  # noqa: E402
from flywheel.sandbox.server import start_sandbox  # noqa: E402
from flywheel.sandbox.skills import generate_tasks  # noqa: E402
from flywheel.tasks.evaluate import evaluate_round, run_eval_battles  # noqa: E402
from flywheel.warehouse.store import connect, now_utc  # noqa: E402
from flywheel.warehouse.writes import insert_new  # noqa: E402

CANDIDATE, CHAMPION, ROUND_ID = "v1", "v0", 1
ARMS = ("single_turn", "conversations")


def arm_config(args: argparse.Namespace, arm: str, run_dir: Path) -> Config:
    """The smoke config in `run_dir` with the planted pair and the arm's mode."""
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"] |= {"path": str(run_dir / "flywheel.duckdb")}
    data["student"] |= {
        "path": str(run_dir / "student"),
        "endpoint": {"name": "student", "base_url": "sandbox", "model": "student-{version}"},
    }
    data["training"]["output_dir"] = str(run_dir / "models")
    data["sandbox"]["models"] |= {
        "student-v0": {"accuracy": args.champion_accuracy, "verbosity": "terse"},
        "student-v1": {
            "accuracy": args.candidate_accuracy,
            "verbosity": "terse",
            "caves_to_pushback": 1.0,
            "forgets_constraint": 1.0,
        },
        "sandbox-user": {"role": "user"},
    }
    simulator = {"name": "sim-user", "base_url": "sandbox", "model": "sandbox-user"}
    data["evaluation"] |= {
        "mode": arm,
        "conversations": {
            "simulator": simulator,
            "n_conversations": args.prompts,
            "max_turns": args.max_turns,
            "seed": args.seed,
        },
    }
    return parse_config(data, f"smoke.yaml ({arm})")


def insert_eval_set(config: Config, n_prompts: int, seed: int) -> None:
    """`n_prompts` sandbox skill prompts as the held-out eval set, the two versions, a round."""
    prompts = [
        {
            "prompt_id": f"e{i:04d}",
            "messages": json.dumps([{"role": "user", "content": task.prompt}]),
            "prompt_text": task.prompt,
            "source": "bench",
            "category": task.skill,
            "split": "eval",
            "status": "active",
            "n_chars": len(task.prompt),
            "added_at": now_utc(),
        }
        for i, task in enumerate(generate_tasks(n_prompts, seed))
    ]
    versions = [
        {"version_id": v, "stage": "sft", "checkpoint_path": f"runs/{v}", "status": "bench"}
        for v in (CHAMPION, CANDIDATE)
    ]
    with connect(config.warehouse.path) as con:
        insert_new(con, "prompts", prompts, ["prompt_id"])
        insert_new(con, "model_versions", versions, ["version_id"])
        insert_new(con, "rounds", [{"round_id": ROUND_ID, "stage": "sft", "status": "bench"}])


def run_arm(args: argparse.Namespace, arm: str, run_dir: Path) -> dict[str, Any]:
    """One evaluation in the arm's mode: its decision, requests, wall time, and views."""
    config = arm_config(args, arm, run_dir)
    insert_eval_set(config, args.prompts, args.seed)
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        started = time.perf_counter()
        run_eval_battles(live, ROUND_ID, (CANDIDATE, None), (CHAMPION, None))
        report = evaluate_round(live, ROUND_ID, CANDIDATE, CHAMPION)
        wall_s = time.perf_counter() - started
        requests = server.state.snapshot()["models"]
    ab = report.conversation_ab if arm == "conversations" else report.ab
    figures: dict[str, Any] = {
        "promoted": report.decision.promote,
        "reason": report.decision.reason,
        "n_evaluated": ab.n,
        "win_rate": round(ab.win_rate, 3),
        "win_rate_ci": [round(ab.ci_low, 3), round(ab.ci_high, 3)],
        "requests": {name: counts["total"] for name, counts in requests.items() if counts["total"]},
        "wall_s": round(wall_s, 2),
    }
    figures["n_requests"] = sum(figures["requests"].values())
    figures["requests_per_evaluated"] = round(figures["n_requests"] / max(ab.n, 1), 2)
    if arm == "conversations":
        figures |= view_figures(config.warehouse.path)
    return figures


def view_figures(path: str) -> dict[str, Any]:
    """Agreement with the ground truth per persona kind, and the realism figures."""
    with duckdb.connect(path, read_only=True) as con:
        calibration = con.execute(
            "select persona_kind, n_decisive_truth, n_agree, agreement "
            "from v_conversation_calibration order by persona_kind"
        ).fetchall()
        realism = con.execute(
            "select persona_kind, model_id, n_conversations, mean_user_turns, done_share, "
            "gave_up_share, pushback_share, handled_right_share from v_sim_realism "
            "order by persona_kind, model_id"
        ).fetchall()
    return {
        "agreement_by_kind": {
            kind: {"n_decisive_truth": n, "n_agree": agree, "agreement": round(share, 3)}
            for kind, n, agree, share in calibration
        },
        "realism": [
            {
                "persona_kind": kind,
                "model": model,
                "n": n,
                "mean_user_turns": round(turns, 2),
                "done_share": round(done, 3),
                "gave_up_share": round(gave_up, 3),
                "pushback_share": None if pushback is None else round(pushback, 3),
                "handled_right_share": None if right is None else round(right, 3),
            }
            for kind, model, n, turns, done, gave_up, pushback, right in realism
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=40, help="eval prompts = conversations")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--champion-accuracy", type=float, default=0.6)
    parser.add_argument("--candidate-accuracy", type=float, default=0.95)
    parser.add_argument("--workdir", default="/tmp/flywheel-conversations")
    args = parser.parse_args()
    workdir = Path(args.workdir).resolve()
    import flywheel.llm.checkpoints  # noqa: F401  (torch: the first answer's import, not an arm's)

    load_before = os.getloadavg()[0]
    arms: dict[str, Any] = {}
    for arm in ARMS:
        run_dir = workdir / f"{arm}-{int(time.time())}"
        run_dir.mkdir(parents=True, exist_ok=True)
        arms[arm] = figures = run_arm(args, arm, run_dir)
        print(
            f"{arm:>13}: {'promoted' if figures['promoted'] else 'kept'}, win rate "
            f"{figures['win_rate']} {figures['win_rate_ci']} over {figures['n_evaluated']}, "
            f"{figures['n_requests']} requests ({figures['requests_per_evaluated']} per "
            f"evaluated), {figures['wall_s']} s",
            file=sys.stderr,
        )
    single, talks = arms["single_turn"], arms["conversations"]
    ratios = {
        "requests_per_conversation_over_per_prompt": round(
            talks["requests_per_evaluated"] / single["requests_per_evaluated"], 2
        ),
        "wall_conversations_over_single_turn": round(talks["wall_s"] / single["wall_s"], 2),
    }
    print(f"ratios: {ratios}", file=sys.stderr)
    print(f"agreement by persona kind: {talks['agreement_by_kind']}", file=sys.stderr)
    summary = {
        "bench": "conversations",
        "prompts": args.prompts,
        "max_turns": args.max_turns,
        "seed": args.seed,
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),
        "ratios": ratios,
        "arms": arms,
    }
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
