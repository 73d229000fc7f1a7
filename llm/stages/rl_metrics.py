"""The figures the rm+rl stage records with its training run (`training_runs.hyperparams`):
the reward models', the RL reward and KL, the ensemble's disagreement, the early stops, the
win-rate checks and the verifiable reward; and the one log line that sums them up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.llm.stages.common import log_values
from flywheel.llm.stages.spec import TrainResult

if TYPE_CHECKING:
    from flywheel.llm import reward_ensemble as ens
    from flywheel.llm.stages.reward_model import EnsembleFit
    from flywheel.llm.stages.rm_rl import PolicyFit, RLConfig
    from flywheel.llm.winrate_stop import WinRateSetup


def policy_metrics(
    policy: PolicyFit,
    rm_result: TrainResult,
    fit: EnsembleFit | None,
    rm_path: Path,
    rl_cfg: RLConfig,
    winrate: WinRateSetup | None,
    checkable: float | None,
) -> dict[str, Any]:
    """Every figure of one rm+rl run, for `TrainResult.metrics`."""
    from flywheel.llm import winrate_stop as wr

    n_winrate_prompts = len(winrate.prompts) if winrate else 0
    return {
        **reward_and_kl_metrics(policy.history, policy.n_steps, rm_result, rm_path),
        **(fit.metrics if fit is not None else {"rm_ensemble_size": 1}),
        **disagreement_metrics(policy.reward),
        **stop_metrics(policy.disagreement_stop, policy.winrate_stop),
        **wr.winrate_metrics(policy.winrate_stop, n_winrate_prompts, rl_cfg.winrate_check_every),
        **verifiable_metrics(policy.reward, rl_cfg.verifiable_reward_weight, checkable),
        **policy.figures,
        "n_truncated": rm_result.metrics.get("n_truncated"),
    }


def disagreement_metrics(reward: ens.EnsembleReward | None) -> dict[str, Any]:
    """The ensemble's spread on the policy's samples."""
    history = reward.disagreement_history if reward is not None else []
    return {
        "rl_disagreement_first": history[0] if history else None,
        "rl_disagreement_last": history[-1] if history else None,
        "rl_disagreement_max": max(history) if history else None,
    }


def stop_metrics(disagreement_stop: Any, winrate_stop: Any) -> dict[str, Any]:
    """Whether RL stopped early, and when, why and on which rule (the first that fired)."""
    fired = [
        (stop.stopped_at_step, rule, stop.reason)
        for rule, stop in (("disagreement", disagreement_stop), ("winrate", winrate_stop))
        if stop is not None and stop.reason is not None
    ]
    step, rule, reason = min(fired, key=lambda f: f[0]) if fired else (None, None, None)
    return {
        "rl_stopped_early": bool(fired),
        "rl_stop_step": step,
        "rl_stop_rule": rule,
        "rl_stop_reason": reason,
    }


def verifiable_metrics(
    reward: ens.EnsembleReward | None, weight: float, checkable: float | None
) -> dict[str, Any]:
    """The verifiable reward's weight, the share of prompts and of samples with a checker
    (this process's samples) and the checker's pass rate on the first and last batches."""
    if reward is None or weight == 0:
        return {"rl_verifiable_reward_weight": weight}
    passes = reward.checker_pass_history
    return {
        "rl_verifiable_reward_weight": weight,
        "rl_verifiable_prompt_share": checkable,
        "rl_verifiable_sample_share": (
            reward.n_checked / reward.n_samples if reward.n_samples else None
        ),
        "rl_checker_pass_first": passes[0] if passes else None,
        "rl_checker_pass_last": passes[-1] if passes else None,
    }


def reward_and_kl_metrics(
    history: list[dict[str, Any]], n_steps: int, rm_result: TrainResult, rm_path: Path
) -> dict[str, Any]:
    """The reward model's figures and the RL reward and KL."""
    rewards = log_values(history, "reward")
    kls = log_values(history, "kl")
    return {
        "n_steps": n_steps,
        "reward_model_path": str(rm_path),
        "rm_n_examples": rm_result.n_examples,
        "rm_first_loss": rm_result.first_loss,
        "rm_last_loss": rm_result.last_loss,
        "rm_last_accuracy": rm_result.metrics.get("last_accuracy"),
        "rm_wall_s": rm_result.wall_s,
        "rl_first_reward": rewards[0] if rewards else None,
        "rl_last_reward": rewards[-1] if rewards else None,
        "rl_last_kl": kls[-1] if kls else None,
    }


def reward_model_line(metrics: dict[str, Any]) -> str:
    """`reward models: 3, held-out pair accuracy 0.70 (each 0.65, 0.60, 0.70); RL stopped early
    at step 12: ...` from the rm+rl stage's metrics."""
    parts = [f"reward models: {metrics.get('rm_ensemble_size', 1)}"]
    ensemble = metrics.get("rm_ensemble_heldout_accuracy")
    if ensemble is not None:
        each = ", ".join(f"{a:.3f}" for a in metrics["rm_member_heldout_accuracy"])
        n = metrics["rm_n_heldout_pairs"]
        parts.append(f"held-out pair accuracy {ensemble:.3f} on {n} pairs (each {each})")
    checks = metrics.get("rl_winrate_checks")
    if checks:
        rates = ", ".join("-" if c["win_rate"] is None else f"{c['win_rate']:.3f}" for c in checks)
        parts.append(f"judged win rate over the champion by check: {rates}")
    if metrics.get("rl_stopped_early"):
        parts.append(
            f"RL stopped early at step {metrics['rl_stop_step']}: {metrics['rl_stop_reason']}"
        )
    return "; ".join(parts)
