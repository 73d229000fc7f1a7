"""What GRPO runs with in the rm+rl stage besides a single reward model: the ensemble reward
(standardised scores, disagreement penalty, verifiable checker), the disagreement and win-rate
early stops, and the warning when no prompt can be checked."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flywheel.llm.stages import common
from flywheel.llm.stages.reward_model import EnsembleFit, member_path

if TYPE_CHECKING:
    from flywheel.llm import reward_ensemble as ens
    from flywheel.llm.stages.rm_rl import RLConfig, RmRlRun


def ensemble_reward(fit: EnsembleFit, run: RmRlRun, tokenizer: Any) -> ens.EnsembleReward:
    """The reward GRPO optimises when the reward models' scores are standardised: the
    ensemble's mean minus the disagreement penalty, mixed with the checker when weighted."""
    from flywheel.llm import reward_ensemble as ens

    rm_cfg, rl_cfg, rm_path = run.rm_cfg, run.rl_cfg, run.rm_path
    k = rm_cfg.ensemble_size
    return ens.EnsembleReward(
        models=ens.load_members([member_path(rm_path, m, k) for m in range(k)]),
        normalisers=fit.normalisers,
        tokenizer=tokenizer,
        penalty=rl_cfg.disagreement_penalty,
        max_length=rm_cfg.max_length,
        verifiable_weight=rl_cfg.verifiable_reward_weight,
    )


def early_stop(reward: ens.EnsembleReward | None, rl_cfg: RLConfig) -> Any:
    """The disagreement stop (llm/reward_ensemble.py), when set and there is an ensemble."""
    from flywheel.llm import reward_ensemble as ens

    factor = rl_cfg.early_stop_disagreement_factor
    if reward is None or factor is None:
        return None
    return ens.disagreement_stop_callback(reward, factor, rl_cfg.early_stop_window)


def winrate_stop(run: RmRlRun) -> Any:
    """The win-rate stop (llm/winrate_stop.py), when `rl.winrate_check_every` is set."""
    from flywheel.llm import winrate_stop as wr

    winrate, rl_cfg = run.winrate, run.rl_cfg
    if winrate is None or rl_cfg.winrate_check_every == 0:
        return None
    return wr.winrate_stop_callback(
        winrate.judge,
        winrate.prompts,
        common.load_tokenizer(run.base_path),  # its own copy: generation pads on the left
        rl_cfg.winrate_check_every,
        rl_cfg.winrate_drop,
        run.max_completion_tokens,
        keep_best=rl_cfg.winrate_keep_best,
    )


def warn_uncheckable(prompts: list[list[dict[str, str]]], weight: float) -> float | None:
    """The share of RL prompts a skill checker can check (None when the weight is 0); a
    warning when a verifiable weight is set and no prompt has a checker."""
    from flywheel.llm.verifiable_reward import checkable_share

    if weight == 0:
        return None
    share = checkable_share(prompts)
    if share == 0:
        logging.getLogger(__name__).warning(
            "training.rl.verifiable_reward_weight = %g but no RL prompt of this stage has a "
            "skill checker: the reward is the reward model's alone (set the weight to 0 for "
            "data without checkers)",
            weight,
        )
    return share
