"""The verifiable part of the RL reward (training.rl.verifiable_reward_weight).

Where a skill checker can check a prompt (the sandbox's tasks: `evaluators/skills.py` reads
the task from the prompt's last user turn), the RL reward of a completion is

    (1 - w) x reward model + w x checker,   checker = +1 right, -1 wrong

The reward model's scores are standardised (its mean and std on its training pairs, see
reward_ensemble.Normaliser), so +1/-1 puts the checker's verdict one standard deviation above
or below the reward model's average answer. Prompts without a checker get the reward model
alone. Pure: no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from flywheel.evaluators.skills import check_answer

CHECKER_RIGHT, CHECKER_WRONG = 1.0, -1.0


def last_user_text(conversation: Sequence[dict[str, str]]) -> str:
    """The last user turn's text (what a skill checker checks); '' when there is none."""
    users = [m["content"] for m in conversation if m["role"] == "user"]
    return users[-1] if users else ""


def completion_text(completion: Any) -> str:
    """A GRPO completion's text: a string, or conversational assistant turns."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion)


def checker_rewards(prompts: Sequence[Any], completions: Sequence[Any]) -> list[float | None]:
    """+1 / -1 per completion the checker of its prompt finds right / wrong; None when the
    prompt has no checker."""
    rewards: list[float | None] = []
    for prompt, completion in zip(prompts, completions, strict=True):
        question = prompt if isinstance(prompt, str) else last_user_text(prompt)
        right = check_answer(question, completion_text(completion))
        rewards.append(None if right is None else CHECKER_RIGHT if right else CHECKER_WRONG)
    return rewards


def mix_rewards(
    model_rewards: Sequence[float], checks: Sequence[float | None], weight: float
) -> np.ndarray:
    """(1 - weight) x reward model + weight x checker where a check exists; the reward
    model alone elsewhere."""
    rewards = np.asarray(model_rewards, dtype=np.float64)
    if weight == 0:
        return rewards
    mixed = rewards.copy()
    for i, check in enumerate(checks):
        if check is not None:
            mixed[i] = (1 - weight) * rewards[i] + weight * check
    return mixed


def checkable_share(prompts: Sequence[Sequence[dict[str, str]]]) -> float:
    """The share of conversations whose last user turn a skill checker can check."""
    if not prompts:
        return 0.0
    checkable = [check_answer(last_user_text(p), "") is not None for p in prompts]
    return sum(checkable) / len(checkable)
