"""One reward model vs an ensemble for the rm+rl stage, on the same mined pairs.

Reads a warehouse where round `--round` mined its reward-model pairs (e.g. after `flywheel run`
of a config whose schedule starts with rm+rl), then trains the rm+rl stage from the round's
champion with each setting in turn, on the same pairs, the same held-out split and the same
seed, and measures each model's and the ensemble's held-out pair accuracy, the RL figures and
the candidate's sandbox accuracy (skill checker) on the held-out eval prompts, next to the
champion's. Prints a table, the ensemble's differences against the single model, and one JSON
line.

    python benchmarks/bench_rm_ensemble.py --config CONFIG [--round 1] [--ensemble 3]
        [--heldout 0.15] [--penalty 0.5] [--stop-factors 0 2.0] [--stop-window 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def _settings(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, training.rm updates, training.rl updates) per compared setting: the single model
    first, then the ensemble with each early-stop factor (0: no early stop)."""
    single = {"ensemble_size": 1, "heldout_fraction": args.heldout}
    ensemble = {"ensemble_size": args.ensemble, "heldout_fraction": args.heldout}
    settings = [("single", single, {})]
    for factor in args.stop_factors:
        rl = {
            "disagreement_penalty": args.penalty,
            "early_stop_disagreement_factor": factor or None,
            "early_stop_window": args.stop_window,
        }
        name = f"k{args.ensemble}" + (f"-stop{factor:g}" if factor else "")
        settings.append((name, ensemble, rl))
    return settings


def _eval_conversations(config: Any) -> list[tuple[str, list[dict[str, str]]]]:
    from flywheel.warehouse.store import connect_warehouse

    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            "select prompt_text, messages from prompts where split = 'eval' and status = 'active' "
            "order by prompt_id"
        ).fetchall()
    return [(text, json.loads(messages)) for text, messages in rows]


def _sandbox_accuracy(config: Any, path: str, evals: list[tuple[str, Any]]) -> float | None:
    from flywheel.llm.checkpoints import generate_answers
    from flywheel.tasks.evaluate import checker_accuracy

    answers = generate_answers(
        path, [c for _, c in evals], max_new_tokens=config.student.max_new_tokens, device="cpu"
    )
    return checker_accuracy([(text, a.text) for (text, _), a in zip(evals, answers, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--ensemble", type=int, default=3)
    parser.add_argument("--heldout", type=float, default=0.15)
    parser.add_argument("--penalty", type=float, default=0.5)
    parser.add_argument("--stop-factors", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument("--stop-window", type=int, default=3)
    args = parser.parse_args()

    from flywheel.config import load_config
    from flywheel.llm.stages.rm_rl import train_rm_rl
    from flywheel.tasks.mine import training_rows
    from flywheel.tasks.train import _slice_prompts, stage_setup
    from flywheel.warehouse.lifecycle import current_champion

    config = load_config(args.config)
    rows = training_rows(config, args.round, "rm+rl")
    prompts = _slice_prompts(config, args.round)
    champion = current_champion(config.warehouse)
    evals = _eval_conversations(config)
    seed = config.training.seed + args.round
    results: dict[str, Any] = {
        "n_pairs": len(rows),
        "n_prompts": len(prompts),
        "n_eval_prompts": len(evals),
        "champion_sandbox_accuracy": _sandbox_accuracy(config, champion.checkpoint_path, evals),
    }
    out_dir = Path(config.training.output_dir) / "bench-rm-ensemble"
    for name, rm_updates, rl_updates in _settings(args):
        rm_cfg = config.training.rm.model_copy(update=rm_updates)
        rl_cfg = config.training.rl.model_copy(update=rl_updates)
        result = train_rm_rl(
            champion.checkpoint_path,
            rows,
            prompts,
            out_dir / name,
            rm_cfg,
            rl_cfg,
            seed,
            max_completion_tokens=config.student.max_new_tokens,
            setup=stage_setup(config),
        )
        m = result.metrics
        results[name] = {
            key: m.get(key)
            for key in (
                "rm_member_heldout_accuracy",
                "rm_ensemble_heldout_accuracy",
                "rm_member_train_accuracy",
                "rm_ensemble_train_accuracy",
                "rm_n_heldout_pairs",
                "rl_first_reward",
                "rl_last_reward",
                "rl_last_kl",
                "rl_disagreement_first",
                "rl_disagreement_last",
                "rl_stopped_early",
                "rl_stop_step",
                "n_steps",
            )
        } | {
            "wall_s": result.wall_s,
            "sandbox_accuracy": _sandbox_accuracy(config, str(result.output_path), evals),
        }
    print(f"{len(rows)} pairs, {len(prompts)} RL prompts, {len(evals)} eval prompts")
    print(f"champion sandbox accuracy {results['champion_sandbox_accuracy']:.3f}")
    print(
        f"{'setting':<12} {'heldout acc':>11} {'members':>20} {'sandbox':>8} {'steps':>5} "
        f"{'stop':>5} {'wall s':>7}"
    )
    names = [name for name, _, _ in _settings(args)]
    for name in names:
        r = results[name]
        members = ", ".join(f"{a:.2f}" for a in r["rm_member_heldout_accuracy"])
        print(
            f"{name:<12} {r['rm_ensemble_heldout_accuracy']:>11.3f} {members:>20} "
            f"{r['sandbox_accuracy']:>8.3f} {r['n_steps']:>5} {str(r['rl_stopped_early']):>5} "
            f"{r['wall_s']:>7.0f}"
        )
    single = results[names[0]]
    for name in names[1:]:
        ensemble = results[name]
        acc_gain = ensemble["rm_ensemble_heldout_accuracy"] - single["rm_ensemble_heldout_accuracy"]
        sandbox_gain = ensemble["sandbox_accuracy"] - single["sandbox_accuracy"]
        print(
            f"{name} - single: held-out pair accuracy {acc_gain:+.3f}, sandbox accuracy "
            f"{sandbox_gain:+.3f}, wall time x{ensemble['wall_s'] / single['wall_s']:.2f}"
        )
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
