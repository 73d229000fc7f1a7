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
conversation arm over the single-turn arm), the agreement per persona kind of the conversation
judge and of the simulated user with the sandbox's ground truth (v_conversation_calibration),
and the simulated users' realism figures (v_sim_realism).

A third arm, `conversations-logs`, measures the simulation against real (sandbox) users: a
sandbox traffic day (`flywheel sandbox traffic`: its users ask the champion student-v0, and the
arena records set student-v1 beside it) is ingested as production logs and the users' next turns
classified as implicit feedback (the sandbox's classifier), the personas' goals are
drawn from the logged conversations (evaluation.conversations.goals logs), and the views set the
simulated users beside the logged ones: the simulated user's verdict against the real users'
feedback on the same model and opening, the judge's outcome against their preference between
the two models (v_conversation_calibration), and the pushback / give-up / satisfied shares and
turns side by side (v_realism_vs_logs). Then one JSON line with every figure.

    python benchmarks/bench_conversations.py [--prompts 40] [--max-turns 3] [--seed 0]
        [--traffic-conversations 400] [--workdir /tmp/flywheel-conversations]
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
from flywheel.pool.logs_ingest import add_log_files  # noqa: E402
from flywheel.sandbox.server import start_sandbox  # noqa: E402
from flywheel.sandbox.skills import generate_tasks  # noqa: E402
from flywheel.sandbox.traffic_day import write_traffic_day  # noqa: E402
from flywheel.tasks.classify_feedback import classify_logged_feedback  # noqa: E402
from flywheel.tasks.conversation_goals import round_personas  # noqa: E402
from flywheel.tasks.evaluate import evaluate_round, run_eval_battles  # noqa: E402
from flywheel.tasks.judge_conversations import judge_conversations  # noqa: E402
from flywheel.tasks.simulate import simulate_conversations  # noqa: E402
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


def rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def view_rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    frame = con.execute(query).df().astype(object)
    return [
        {k: None if v is None or v != v else rounded(v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def view_figures(path: str) -> dict[str, Any]:
    """Agreement with the ground truth and with real users per persona kind, the realism
    figures, and the simulated users beside the logged ones."""
    with duckdb.connect(path, read_only=True) as con:
        calibration = view_rows(
            con, "select * exclude (round_id) from v_conversation_calibration order by 1"
        )
        realism = con.execute(
            "select persona_kind, model_id, n_conversations, mean_user_turns, done_share, "
            "gave_up_share, pushback_share, handled_right_share from v_sim_realism "
            "order by persona_kind, model_id"
        ).fetchall()
        versus_logs = view_rows(
            con, "select * exclude (round_id) from v_realism_vs_logs order by model_id"
        )
        costs = view_rows(con, "select * exclude (round_id) from v_conversation_costs")
    return {
        "agreement_by_kind": {row.pop("persona_kind"): row for row in calibration},
        "realism_vs_logs": versus_logs,
        "costs": costs,
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


def logs_arm(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Conversations whose goals are drawn from a sandbox traffic day's logs (module doc)."""
    config = arm_config(args, "conversations", run_dir)
    insert_eval_set(config, args.prompts, args.seed)
    traffic = write_traffic_day(
        config.sandbox,
        args.traffic_day,
        run_dir / "traffic",
        args.traffic_conversations,
        args.traffic_users,
        model=f"student-{CHAMPION}",
        versus=f"student-{CANDIDATE}",
    )
    os.environ.setdefault(config.logs.user_salt_env, "bench-conversations")
    logs = add_log_files(config, traffic.paths, source="sandbox-traffic")
    versions = ((CANDIDATE, None), (CHAMPION, None))
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        classified = classify_logged_feedback(live)  # the users' next turns: implicit feedback
        started = time.perf_counter()
        personas = round_personas(live, source="logs")
        simulate_conversations(live, ROUND_ID, personas, versions)
        judge_conversations(live, ROUND_ID, CANDIDATE, CHAMPION)
        report = evaluate_round(live, ROUND_ID, CANDIDATE, CHAMPION)
        wall_s = time.perf_counter() - started
    ab = report.conversation_ab
    kinds: dict[str, int] = {}
    for persona in personas:
        kinds[persona.kind] = kinds.get(persona.kind, 0) + 1
    return {
        "traffic": traffic.summary(),
        "logs": logs.summary(),
        "classified": classified.summary(),
        "n_personas_from_logs": sum(p.goal_source == "logs" for p in personas),
        "persona_kinds": kinds,
        "promoted": report.decision.promote,
        "reason": report.decision.reason,
        "n_evaluated": ab.n,
        "win_rate": round(ab.win_rate, 3),
        "win_rate_ci": [round(ab.ci_low, 3), round(ab.ci_high, 3)],
        "wall_s": round(wall_s, 2),
    } | view_figures(config.warehouse.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=40, help="eval prompts = conversations")
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--champion-accuracy", type=float, default=0.6)
    parser.add_argument("--candidate-accuracy", type=float, default=0.95)
    parser.add_argument("--traffic-day", type=int, default=1)
    parser.add_argument("--traffic-conversations", type=int, default=400)
    parser.add_argument("--traffic-users", type=int, default=50)
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
    print_agreement("conversations (eval goals)", talks, sys.stderr)
    run_dir = workdir / f"conversations-logs-{int(time.time())}"
    run_dir.mkdir(parents=True, exist_ok=True)
    arms["conversations-logs"] = from_logs = logs_arm(args, run_dir)
    print(
        f"conversations-logs: {'promoted' if from_logs['promoted'] else 'kept'}, win rate "
        f"{from_logs['win_rate']} {from_logs['win_rate_ci']} over {from_logs['n_evaluated']} "
        f"({from_logs['n_personas_from_logs']} goals from the logs: "
        f"{from_logs['persona_kinds']}), {from_logs['wall_s']} s",
        file=sys.stderr,
    )
    print_agreement("conversations (goals from the logs)", from_logs, sys.stderr)
    for row in from_logs["realism_vs_logs"]:
        print(f"  realism, simulated vs logged: {row}", file=sys.stderr)
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


def print_agreement(title: str, arm: dict[str, Any], out: Any) -> None:
    """Per persona kind: agreeing / compared (share) of the judge and of the simulated user."""
    print(f"agreement by persona kind, {title}:", file=out)
    pairs = (
        ("judge vs truth", "n_agree", "n_decisive_truth"),
        ("user vs truth", "n_user_agree_truth", "n_user_truth"),
        ("user vs real users", "n_user_agree_feedback", "n_user_feedback"),
        ("judge vs real users", "n_judge_agree_feedback", "n_judge_feedback"),
    )
    for kind, row in arm["agreement_by_kind"].items():
        cells = [
            f"{name} {row[agree]}/{row[n]}" + (f" ({row[agree] / row[n]:.3f})" if row[n] else "")
            for name, agree, n in pairs
        ]
        print(f"  {kind:>10}: " + "; ".join(cells), file=out)


if __name__ == "__main__":
    main()
