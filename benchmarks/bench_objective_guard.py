"""How often the objective guard refuses a candidate, by how much worse it really is.

The guard (evaluation.objective_max_drop, evaluators/objective.py) compares point estimates of
accuracy on the same items, so on a finite set it sometimes refuses a candidate that is as good
as the champion, and sometimes passes one that is worse. This measures both on the sandbox:
the pair is served by the sandbox as `student-{version}`: the champion v0 answers right
`--champion-accuracy` of the time, the candidate v1 that plus each `--changes` (a true change
in accuracy points), every prompt's right or wrong drawn by the sandbox per model and seed.
Each (change, seed) runs the real evaluate path (tasks/evaluate.py: both answer the held-out
prompts, the judge compares them, the A/B rule, the guard) on `--prompts` sandbox prompts in a
fresh warehouse against a fresh sandbox (sandbox.seed and the eval set drawn from the seed).

Per true change: the share of seeds the guard refuses at each margin in `--margins` (the
stored accuracies re-decided at every margin: the guard is a pure function of them), the share
the A/B rule alone would promote, and the mean measured change. Then one JSON line.

    python benchmarks/bench_objective_guard.py [--prompts 200] [--seeds 10]
        [--champion-accuracy 0.6] [--changes=-0.1,-0.05,0,0.1] [--margins 0,0.05,0.1]
        [--workdir /tmp/bench-objective-guard]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flywheel.config import Config, parse_config, resolve_sandbox_endpoints  # noqa: E402
from flywheel.evaluators.objective import objective_verdict  # noqa: E402
from flywheel.sandbox.server import start_sandbox  # noqa: E402
from flywheel.tasks.evaluate import evaluate_round, run_eval_battles  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conversations import CANDIDATE, CHAMPION, ROUND_ID, insert_eval_set  # noqa: E402


def pair_config(run_dir: Path, champion: float, candidate: float, seed: int) -> Config:
    """configs/smoke.yaml in `run_dir`, the pair served by the sandbox, the seed's sandbox."""
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"] |= {"path": str(run_dir / "flywheel.duckdb")}
    data["student"] |= {
        "path": str(run_dir / "student"),
        "endpoint": {"name": "student", "base_url": "sandbox", "model": "student-{version}"},
    }
    data["training"]["output_dir"] = str(run_dir / "models")
    data["sandbox"]["seed"] = seed
    data["sandbox"]["models"] |= {
        "student-v0": {"accuracy": champion, "verbosity": "terse"},
        "student-v1": {"accuracy": candidate, "verbosity": "terse"},
    }
    data["evaluation"] |= {"seed": seed}
    return parse_config(data, "smoke.yaml (bench_objective_guard)")


def run_case(args: argparse.Namespace, change: float, seed: int) -> dict[str, Any]:
    """One evaluation of the pair: measured accuracies, the A/B's decision, the wall time."""
    run_dir = Path(args.workdir) / f"change{change:+.2f}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    champion = args.champion_accuracy
    config = pair_config(run_dir, champion, min(1.0, max(0.0, champion + change)), seed)
    insert_eval_set(config, args.prompts, seed)
    started = time.perf_counter()
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        run_eval_battles(live, ROUND_ID, (CANDIDATE, None), (CHAMPION, None))
        report = evaluate_round(live, ROUND_ID, CANDIDATE, CHAMPION)
    objective = report.objective
    assert objective is not None, "the sandbox's checkers always check skill prompts"
    return {
        "change": change,
        "seed": seed,
        "accuracy_candidate": objective.candidate.accuracy,
        "accuracy_champion": objective.champion.accuracy,
        "measured_change": objective.change,
        "ab_promotes": report.ab.ci_low > 0.5 + config.evaluation.promotion_margin,
        "refused_at": {
            f"{m:.2f}": objective_verdict(objective, m).outcome == "refused" for m in args.margins
        },
        "wall_s": time.perf_counter() - started,
    }


def summarise(cases: list[dict[str, Any]], margins: list[float]) -> list[dict[str, Any]]:
    rows = []
    for change in sorted({c["change"] for c in cases}):
        mine = [c for c in cases if c["change"] == change]
        row: dict[str, Any] = {
            "true_change": change,
            "n_seeds": len(mine),
            "mean_measured_change": statistics.fmean(c["measured_change"] for c in mine),
            "sd_measured_change": statistics.pstdev(c["measured_change"] for c in mine),
            "ab_promotes_share": statistics.fmean(c["ab_promotes"] for c in mine),
        }
        for m in margins:
            row[f"refused_share_margin_{m:.2f}"] = statistics.fmean(
                c["refused_at"][f"{m:.2f}"] for c in mine
            )
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], margins: list[float]) -> None:
    header = ["true change", "measured (mean, sd)", "A/B promotes"] + [
        f"refused @{m:.2f}" for m in margins
    ]
    print(" | ".join(header))
    for row in rows:
        cells = [
            f"{row['true_change']:+.2f}",
            f"{row['mean_measured_change']:+.3f}, {row['sd_measured_change']:.3f}",
            f"{row['ab_promotes_share']:.2f}",
        ] + [f"{row[f'refused_share_margin_{m:.2f}']:.2f}" for m in margins]
        print(" | ".join(cells))


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--champion-accuracy", type=float, default=0.6)
    parser.add_argument("--changes", type=floats, default=[-0.1, -0.05, 0.0, 0.1])
    parser.add_argument("--margins", type=floats, default=[0.0, 0.05, 0.1])
    parser.add_argument("--workdir", default="/tmp/bench-objective-guard")
    args = parser.parse_args()
    started = time.perf_counter()
    cases = [run_case(args, change, seed) for change in args.changes for seed in range(args.seeds)]
    rows = summarise(cases, args.margins)
    print_table(rows, args.margins)
    result = {
        "bench": "objective_guard",
        "prompts": args.prompts,
        "seeds": args.seeds,
        "champion_accuracy": args.champion_accuracy,
        "rows": rows,
        "mean_eval_wall_s": statistics.fmean(c["wall_s"] for c in cases),
        "wall_s": time.perf_counter() - started,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
