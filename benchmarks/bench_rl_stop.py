"""The rm+rl stage with and without the verifiable reward mix and the win-rate early stop.

Reads a warehouse where round `--round` mined its reward-model pairs (e.g. after `flywheel run`
of a copy of configs/demo.yaml with `schedule.stages: [rm+rl]`, so round 1 trains RL on the
round-0 student), then trains the rm+rl stage from the round's champion once per setting, on
the same pairs, the same RL prompts (the slice less the win-rate check's held-out prompts, for
every setting, so the settings differ only in what is compared) and the same seed:

    off       the config's training.rl
    w<W>      verifiable_reward_weight W (`--weights`)
    stop      winrate_check_every `--check-every`, winrate_drop `--drop`, judged by the
              config's judge on the sandbox (calls stored in the warehouse with the round)

each at the config's RL learning rate and at `--hot-lr` (where GRPO hacks the reward model).
It measures the candidate's sandbox accuracy (skill checker, not the judge) on the held-out
eval prompts next to the champion's, and prints a table, each setting's accuracy as a ratio
of `off`'s at the same learning rate, and one JSON line. The thread count is
`training.cpu_threads` of the config (set it; results depend on it).

    python benchmarks/bench_rl_stop.py --config CONFIG [--round 1] [--weights 0.5]
        [--check-every 5] [--drop 0.1] [--hot-lr 0.0005] [--winrate-prompts N]
        [--settings off stop hot-off hot-stop]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

FIGURES = (
    "rl_first_reward",
    "rl_last_reward",
    "rl_last_kl",
    "rl_stopped_early",
    "rl_stop_step",
    "rl_stop_reason",
    "rl_winrate_checks",
    "rl_verifiable_sample_share",
    "rl_checker_pass_first",
    "rl_checker_pass_last",
    "n_steps",
)


def _settings(args: argparse.Namespace, base_lr: float) -> list[tuple[str, dict[str, Any]]]:
    """(name, training.rl updates) per compared setting."""
    settings = []
    for lr_name, lr in (("", base_lr), ("hot-", args.hot_lr)):
        settings.append((f"{lr_name}off", {"learning_rate": lr}))
        for weight in args.weights:
            update = {"learning_rate": lr, "verifiable_reward_weight": weight}
            settings.append((f"{lr_name}w{weight:g}", update))
        stop = {"winrate_check_every": args.check_every, "winrate_drop": args.drop}
        settings.append((f"{lr_name}stop", {"learning_rate": lr, **stop}))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5])
    parser.add_argument("--check-every", type=int, default=5)
    parser.add_argument("--drop", type=float, default=0.1)
    parser.add_argument("--hot-lr", type=float, default=5e-4)
    parser.add_argument(
        "--winrate-prompts", type=int, default=None, help="default: training.rl.winrate_prompts"
    )
    parser.add_argument(
        "--settings", nargs="+", default=None, help="run only these settings (default: all)"
    )
    args = parser.parse_args()

    from bench_rm_ensemble import _eval_conversations, _sandbox_accuracy

    from flywheel.config import load_config, resolve_sandbox_endpoints
    from flywheel.llm.checkpoints import configure_cpu_threads
    from flywheel.llm.stages.rm_rl import reward_model_path, train_rm_rl
    from flywheel.sandbox.server import start_sandbox
    from flywheel.tasks.mine import training_rows
    from flywheel.tasks.train import rl_prompts, stage_setup
    from flywheel.warehouse.lifecycle import recorded_champion

    config = load_config(args.config)
    configure_cpu_threads(config.training.cpu_threads)
    rows = training_rows(config, args.round, "rm+rl")
    champion = recorded_champion(config.warehouse, args.round)  # the round's champion before
    evals = _eval_conversations(config)
    seed = config.training.seed + args.round
    results: dict[str, Any] = {
        "cpu_threads": config.training.cpu_threads,
        "n_pairs": len(rows),
        "n_eval_prompts": len(evals),
        "champion_sandbox_accuracy": _sandbox_accuracy(config, champion.checkpoint_path, evals),
    }
    out_dir = Path(config.training.output_dir) / "bench-rl-stop"
    n_heldout = args.winrate_prompts or config.training.rl.winrate_prompts
    checking = config.training.rl.model_copy(
        update={"winrate_check_every": args.check_every, "winrate_prompts": n_heldout}
    )
    split_config = config.model_copy(
        update={"training": config.training.model_copy(update={"rl": checking})}
    )
    names = []
    with start_sandbox(config.sandbox) as sandbox:
        live = resolve_sandbox_endpoints(split_config, sandbox.base_url)
        prompts, winrate = rl_prompts(live, args.round)
        results["n_rl_prompts"] = len(prompts)
        results["n_winrate_prompts"] = len(winrate.prompts) if winrate else 0
        for name, rl_updates in _settings(args, config.training.rl.learning_rate):
            if args.settings is not None and name not in args.settings:
                continue
            names.append(name)
            for stale in (out_dir / name, reward_model_path(out_dir / name)):
                shutil.rmtree(stale, ignore_errors=True)  # an earlier run's
            rl_cfg = config.training.rl.model_copy(
                update={"winrate_prompts": n_heldout, **rl_updates}
            )
            result = train_rm_rl(
                champion.checkpoint_path,
                rows,
                prompts,
                out_dir / name,
                config.training.rm,
                rl_cfg,
                seed,
                max_completion_tokens=config.student.max_new_tokens,
                setup=stage_setup(config),
                winrate=winrate if rl_cfg.winrate_check_every else None,
            )
            results[name] = {key: result.metrics.get(key) for key in FIGURES} | {
                "learning_rate": rl_cfg.learning_rate,
                "wall_s": result.wall_s,
                "sandbox_accuracy": _sandbox_accuracy(config, str(result.output_path), evals),
            }
            print(name, json.dumps(results[name], default=str), flush=True)
    _print_table(results, names)
    print(json.dumps(results, default=str))


def _print_table(results: dict[str, Any], names: list[str]) -> None:
    champion = results["champion_sandbox_accuracy"]
    print(
        f"{results['n_pairs']} pairs, {results['n_rl_prompts']} RL prompts (and "
        f"{results['n_winrate_prompts']} held out for the win-rate check), "
        f"{results['n_eval_prompts']} eval prompts, {results['cpu_threads']} CPU threads; "
        f"champion sandbox accuracy {champion:.3f}"
    )
    print(
        f"{'setting':<10} {'lr':>8} {'sandbox':>8} {'x off':>6} {'x champ':>7} {'steps':>5} "
        f"{'stop':>5} {'win rates':>28} {'wall s':>7}"
    )
    for name in names:
        r = results[name]
        peer = results.get("hot-off" if name.startswith("hot-") else "off")
        ratio = f"{r['sandbox_accuracy'] / peer['sandbox_accuracy']:.2f}" if peer else "-"
        rates = " ".join(
            "-" if c["win_rate"] is None else f"{c['win_rate']:.2f}"
            for c in r["rl_winrate_checks"] or []
        )
        print(
            f"{name:<10} {r['learning_rate']:>8.0e} {r['sandbox_accuracy']:>8.3f} "
            f"{ratio:>6} "
            f"{r['sandbox_accuracy'] / champion:>7.2f} {r['n_steps']:>5} "
            f"{str(r['rl_stopped_early']):>5} {rates or '-':>28} {r['wall_s']:>7.0f}"
        )


if __name__ == "__main__":
    main()
