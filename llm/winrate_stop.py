"""RL's early stop on a falling judged win rate against the champion (training.rl.winrate_*).

Before RL and every `winrate_check_every` steps, the policy answers a small held-out set of
the stage's prompts greedily, and a judge (injected: `WinRateJudge`; tasks/rl_winrate.py calls
the configured judge through the call cache) compares its answers with the champion's, both
orders. RL stops when the win rate falls more than `winrate_drop` below the best seen; with
`winrate_keep_best` the policy of the best check is then put back (its trainable weights are
kept as one CPU copy), so the candidate is that one (`rl_winrate_kept_step`).

The first check is before any step: the policy is then the champion, so its answers are the
champion's own and the win rate is 0.5 by definition (ties), without judge calls. The
champion's answers are those greedy answers, generated once by the model before training.

The rule (`winrate_stop_reason`) and the held-out split (`winrate_split`) are pure; the
callback generates with the trainer's model between steps, with torch's random state kept
as it was (greedy decoding needs none, and the run's sampling must not depend on the checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

Conversation = list[dict[str, str]]
CHAMPION_WIN_RATE = 0.5  # the policy before RL is the champion: every battle a tie


@dataclass(frozen=True)
class WinRateCheck:
    """One check: the policy's judged win rate over the champion after `step` steps.

    `win_rate` is None when no battle got a verdict (every call failed or was unparsed); such
    a check never stops RL."""

    step: int
    win_rate: float | None
    n_battles: int  # battles with a verdict (win, loss, tie or inconsistent)
    n_wins: int
    n_losses: int
    n_unjudged: int  # unparsed or failed: left out of the win rate
    n_sent: int = 0  # judge calls sent (the rest came from the call cache)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


WinRateJudge = Callable[[list[Conversation], list[str], list[str], int], WinRateCheck]
"""(prompts, champion answers, policy answers, step) -> the judged check."""


@dataclass(frozen=True)
class WinRateSetup:
    """What the trainer needs for the win-rate stop: the judge and the held-out prompts."""

    judge: WinRateJudge
    prompts: list[Conversation]


def winrate_split(
    prompts: list[Conversation], n_heldout: int, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """(prompts RL trains on, prompts held out for the win-rate check): a seeded
    `n_heldout` of them held out, each list in the given order. Raises ValueError when that
    would leave RL no prompt."""
    if n_heldout >= len(prompts):
        raise ValueError(
            f"the win-rate check holds out {n_heldout} prompts but the stage has only "
            f"{len(prompts)}; set training.rl.winrate_prompts below {len(prompts)}"
        )
    order = np.random.default_rng([seed, 2]).permutation(len(prompts))
    heldout = set(order[:n_heldout].tolist())
    train = [p for i, p in enumerate(prompts) if i not in heldout]
    return train, [p for i, p in enumerate(prompts) if i in heldout]


def winrate_stop_reason(checks: list[WinRateCheck], drop: float) -> str | None:
    """Why RL should stop, or None: the latest check's win rate is more than `drop` below
    the best win rate of the checks so far (checks without a win rate are left out)."""
    rated = [c for c in checks if c.win_rate is not None]
    if len(rated) < 2:
        return None
    best = max(rated, key=lambda c: c.win_rate or 0.0)
    latest = rated[-1]
    assert best.win_rate is not None and latest.win_rate is not None
    if latest.win_rate < best.win_rate - drop:
        return (
            f"judged win rate over the champion {latest.win_rate:.3f} at step {latest.step} "
            f"fell more than {drop:g} below its best {best.win_rate:.3f} (step {best.step})"
        )
    return None


def greedy_answers(
    model: Any, tokenizer: Any, prompts: list[Conversation], max_new_tokens: int
) -> list[str]:
    """The model's greedy answers to `prompts` (left-padded batches, the checkpoint's stop
    tokens), in eval mode, leaving its train mode and torch's random state as they were."""
    from flywheel.llm.checkpoints import LocalGenerator, stop_token_ids

    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    generator = LocalGenerator(
        path=None,  # type: ignore[arg-type]
        model=model,
        tokenizer=tokenizer,
        stop_ids=stop_token_ids(model.generation_config, tokenizer),
    )
    try:
        with torch.random.fork_rng(devices=_cuda_devices()):
            answers = generator.generate(prompts, max_new_tokens=max_new_tokens)
    finally:
        model.train(was_training)
    return [a.text for a in answers]


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def trainable_weights(model: Any) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's trainable parameters (all of them, or LoRA's)."""
    return {
        name: param.detach().to("cpu", copy=True)
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def restore_weights(model: Any, weights: dict[str, torch.Tensor]) -> None:
    """Put a `trainable_weights` copy back into the model, in place."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name].to(param.device))


def winrate_stop_callback(
    judge: WinRateJudge,
    prompts: list[Conversation],
    tokenizer: Any,
    every: int,
    drop: float,
    max_new_tokens: int,
    keep_best: bool = True,
) -> Any:
    """A TrainerCallback running the checks (see the module doc); it keeps them in `checks`
    and, once it stopped RL, the step and the reason in `stopped_at_step` and `reason`. With
    `keep_best`, a stop puts back the weights of the best check (`kept_step`)."""
    from transformers import TrainerCallback

    class WinRateStop(TrainerCallback):
        def __init__(self) -> None:
            self.checks: list[WinRateCheck] = []
            self.champion_answers: list[str] = []
            self.stopped_at_step: int | None = None
            self.reason: str | None = None
            self.kept_step: int | None = None
            self.best_weights: dict[str, torch.Tensor] | None = None
            self.best_rate: float | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            model = kwargs["model"]
            self.champion_answers = greedy_answers(model, tokenizer, prompts, max_new_tokens)
            self._record(WinRateCheck(0, CHAMPION_WIN_RATE, len(prompts), 0, 0, 0), model)
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self.reason is None and state.global_step % every == 0:
                model, step = kwargs["model"], state.global_step
                answers = greedy_answers(model, tokenizer, prompts, max_new_tokens)
                self._record(judge(prompts, self.champion_answers, answers, step), model)
                reason = winrate_stop_reason(self.checks, drop)
                if reason is not None:
                    self.stopped_at_step, self.reason = step, reason
                    self._keep_best(model)
            if self.reason is not None:
                control.should_training_stop = True
            return control

        def _record(self, check: WinRateCheck, model: Any) -> None:
            self.checks.append(check)
            better = check.win_rate is not None and (
                self.best_rate is None or check.win_rate > self.best_rate
            )
            if better:
                self.best_rate, self.kept_step = check.win_rate, check.step
                self.best_weights = trainable_weights(model) if keep_best else None

        def _keep_best(self, model: Any) -> None:
            if keep_best and self.best_weights is not None:
                restore_weights(model, self.best_weights)
            else:
                self.kept_step = self.stopped_at_step

    return WinRateStop()


def winrate_metrics(stop: Any, n_prompts: int, every: int) -> dict[str, Any]:
    """The checks for `TrainResult.metrics` (empty when the check is off)."""
    if stop is None:
        return {}
    rates = [c.win_rate for c in stop.checks if c.win_rate is not None]
    return {
        "rl_winrate_check_every": every,
        "rl_winrate_n_prompts": n_prompts,
        "rl_winrate_checks": [c.as_dict() for c in stop.checks],
        "rl_winrate_best": max(rates) if rates else None,
        "rl_winrate_last": rates[-1] if rates else None,
        "rl_winrate_judge_calls_sent": sum(c.n_sent for c in stop.checks),
        "rl_winrate_kept_step": stop.kept_step if stop.reason is not None else None,
    }
