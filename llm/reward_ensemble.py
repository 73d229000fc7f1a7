"""The reward-model ensemble of the rm+rl stage: k reward models fit on bootstrap resamples.

The arithmetic is pure (held-out split, bootstrap indices, standardising, combining, pair
accuracy, the early-stop rule); `EnsembleReward` scores GRPO's completions with the k loaded
models, and `DisagreementStop` stops GRPO when the ensemble's spread on the policy's samples
rises above a factor of its value on the first batches (the policy leaving the region where the
reward models agree, the first sign of reward hacking).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flywheel.llm.verifiable_reward import checker_rewards, mix_rewards

SCORE_BATCH = 32


@dataclass(frozen=True)
class Normaliser:
    """A reward model's score mean and std on its training pairs (chosen and rejected)."""

    mean: float
    std: float

    @staticmethod
    def fit(scores: list[float]) -> Normaliser:
        values = np.asarray(scores, dtype=np.float64)
        std = float(values.std())
        return Normaliser(float(values.mean()), std if std > 1e-8 else 1.0)

    def apply(self, scores: list[float]) -> np.ndarray:
        return (np.asarray(scores, dtype=np.float64) - self.mean) / self.std


def heldout_split(n_pairs: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) indices of `n_pairs` pairs: a seeded `fraction` held out (at least
    one pair when the fraction is above 0, and at least one pair always left to train on)."""
    if fraction <= 0 or n_pairs < 2:
        return list(range(n_pairs)), []
    order = np.random.default_rng([seed, 0]).permutation(n_pairs)
    n_heldout = min(max(1, round(n_pairs * fraction)), n_pairs - 1)
    return sorted(order[n_heldout:].tolist()), sorted(order[:n_heldout].tolist())


def bootstrap_indices(n_rows: int, ensemble_size: int, seed: int) -> list[list[int]]:
    """Each member's rows: every row once for a single model; for an ensemble, member i's own
    seeded resample with replacement of `n_rows` rows."""
    if ensemble_size == 1:
        return [list(range(n_rows))]
    return [
        np.random.default_rng([seed, 1, member]).integers(0, n_rows, size=n_rows).tolist()
        for member in range(ensemble_size)
    ]


def combine(standardised: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """(reward, disagreement) per sample from a (models x samples) array of standardised
    scores: the mean over models minus `penalty` x their std across models (0 for one model)."""
    disagreement = standardised.std(axis=0)
    return standardised.mean(axis=0) - penalty * disagreement, disagreement


def pair_accuracy(chosen: np.ndarray | list[float], rejected: np.ndarray | list[float]) -> float:
    """The share of pairs whose chosen answer scores above the rejected one (a tie counts half)."""
    chosen_arr, rejected_arr = np.asarray(chosen), np.asarray(rejected)
    if len(chosen_arr) == 0:
        return float("nan")
    wins = (chosen_arr > rejected_arr).sum() + 0.5 * (chosen_arr == rejected_arr).sum()
    return float(wins / len(chosen_arr))


def disagreement_stop_reason(history: list[float], factor: float, window: int = 1) -> str | None:
    """Why RL should stop, or None: the mean disagreement of the latest `window` batches is above
    `factor` x that of the first `window` batches (the two windows do not overlap)."""
    if len(history) < 2 * window:
        return None
    start = sum(history[:window]) / window
    latest = sum(history[-window:]) / window
    if start > 0 and latest > factor * start:
        return (
            f"ensemble disagreement {latest:.4g} (mean of the last {window} batches) rose above "
            f"{factor:g} x its starting value {start:.4g}"
        )
    return None


def _device() -> torch.device:
    from accelerate import PartialState

    return PartialState().device


def load_members(paths: list[Path]) -> list[Any]:
    """The ensemble's reward models, in eval mode on this process's device."""
    from transformers import AutoModelForSequenceClassification

    device = _device()
    models = []
    for path in paths:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        models.append(model.to(device).eval())
    return models


def score(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], max_length: int
) -> list[float]:
    """A reward model's scalar score of each conversation, rendered as GRPO renders a
    (prompt, completion) for a reward model: the chat template, padded right, no special tokens
    added."""
    from trl.data_utils import apply_chat_template

    scores: list[float] = []
    for start in range(0, len(conversations), SCORE_BATCH):
        batch = conversations[start : start + SCORE_BATCH]
        texts = [apply_chat_template({"messages": c}, tokenizer)["text"] for c in batch]
        inputs = tokenizer(
            text=texts,
            return_tensors="pt",
            padding=True,
            padding_side="right",
            add_special_tokens=False,
            truncation=True,
            max_length=max_length,
        ).to(model.device)
        with torch.inference_mode():
            scores.extend(model(**inputs).logits[:, 0].float().tolist())
    return scores


def pair_conversations(rows: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """(prompt + chosen, prompt + rejected) conversations of preference rows."""
    return [r["prompt"] + r["chosen"] for r in rows], [r["prompt"] + r["rejected"] for r in rows]


@dataclass
class EnsembleReward:
    """GRPO's reward function: the ensemble's standardised mean minus `penalty` x its spread,
    mixed with a skill checker's verdict by `verifiable_weight` where one exists
    (llm/verifiable_reward.py).

    Keeps each batch's mean disagreement in `disagreement_history` (averaged over processes
    under a distributed launch, so every rank takes the same early-stop decision), and with a
    verifiable weight this process's count of samples and of those a checker checked, and each
    batch's share of checked samples found right in `checker_pass_history`.
    """

    models: list[Any]
    normalisers: list[Normaliser]
    tokenizer: Any
    penalty: float
    max_length: int
    verifiable_weight: float = 0.0
    disagreement_history: list[float] = field(default_factory=list)
    n_samples: int = 0
    n_checked: int = 0
    checker_pass_history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.__name__ = "reward_ensemble"  # GRPO names a reward function by its __name__

    def rewards_of(self, conversations: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(reward, disagreement) of each conversation."""
        standardised = np.stack(
            [
                normaliser.apply(score(model, self.tokenizer, conversations, self.max_length))
                for model, normaliser in zip(self.models, self.normalisers, strict=True)
            ]
        )
        return combine(standardised, self.penalty)

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        conversations = [p + c for p, c in zip(prompts, completions, strict=True)]
        rewards, disagreement = self.rewards_of(conversations)
        mean_disagreement = _mean_over_processes(float(disagreement.mean()))
        self.disagreement_history.append(mean_disagreement)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            log_metric("ensemble_disagreement", mean_disagreement)
        if self.verifiable_weight == 0:
            return rewards.tolist()
        checks = checker_rewards(prompts, completions)
        checked = [c for c in checks if c is not None]
        self.n_samples += len(checks)
        self.n_checked += len(checked)
        if checked:
            self.checker_pass_history.append(sum(c > 0 for c in checked) / len(checked))
        return mix_rewards(rewards, checks, self.verifiable_weight).tolist()


def _mean_over_processes(value: float) -> float:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_device())
    torch.distributed.all_reduce(tensor)
    return float(tensor.item()) / torch.distributed.get_world_size()


def disagreement_stop_callback(reward: EnsembleReward, factor: float, window: int) -> Any:
    """A TrainerCallback that stops training when `disagreement_stop_reason` gives a reason,
    keeping the step and the reason in its `stopped_at_step` and `reason`."""
    from transformers import TrainerCallback

    class DisagreementStop(TrainerCallback):
        def __init__(self) -> None:
            self.stopped_at_step: int | None = None
            self.reason: str | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            reason = disagreement_stop_reason(reward.disagreement_history, factor, window)
            if reason is not None and self.reason is None:
                self.stopped_at_step, self.reason = state.global_step, reason
            if self.reason is not None:
                control.should_training_stop = True
            return control

    return DisagreementStop()
