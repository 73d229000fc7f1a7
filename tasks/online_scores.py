"""The rewards of the champion's samples for the online-dpo pairs (tasks/online_pairs.py).

Which reward models: `training.online_dpo.reward_model` names a checkpoint (or a folder of
`member-<i>` checkpoints, such as an rm+rl round's `<candidate>-rm`); left null, an ensemble of
`training.rm.ensemble_size` reward models is fit from the champion on the DPO pairs mined up to
the round (training.rm's settings, seeded by the round), as the judge budget's selector does
(tasks/select.py), used for this round and removed. `training.online_dpo.reward_fit_replay_rows`
caps the earlier rounds' pairs in the fit (newest round first, then the widest gap, as a stage's
replay budget does), so the fit costs the same on night 300 as on night 30. Fewer pairs than
`training.rm.min_examples` leaves the stage without reward models (`RewardUnavailable`, naming
the fixes).

The reward of a sample: each member's scores standardised over the round's samples, their mean
minus `disagreement_penalty` x their spread (llm/reward_ensemble.py's `combine`), mixed with the
skill checker's +1/-1 by `verifiable_reward_weight` where a prompt has a checker
(llm/verifiable_reward.py), as the rm+rl stage's RL reward is.
"""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flywheel.config import Config
from flywheel.llm.stages.online_dpo import reward_members, reward_model_problem
from flywheel.llm.verifiable_reward import checker_rewards, mix_rewards
from flywheel.logs import step_logger
from flywheel.tasks.mine import dpo_pairs_up_to
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect_warehouse, read_query

Conversation = list[dict[str, str]]


class RewardUnavailable(Exception):  # noqa: N818 (a reason the stage is skipped, not a fault)
    """No reward models can rank this round's samples; the message says why and the fixes."""


@dataclass(frozen=True)
class RewardModels:
    """The reward models that rank the samples, and what they are, in words."""

    paths: list[Path]
    description: str


@dataclass(frozen=True)
class SampleRewards:
    """Every sample's reward, in the order given, and what scored them."""

    rewards: list[float]
    scored_by: str
    n_checked: int  # samples a skill checker checked (0 without a verifiable weight)


def combine_rewards(
    member_scores: Sequence[Sequence[float]],
    checks: Sequence[float | None],
    verifiable_weight: float,
    disagreement_penalty: float = 0.0,
) -> np.ndarray:
    """Each sample's reward from a (members x samples) table of raw scores: each member's
    scores standardised over the samples, their mean minus `disagreement_penalty` x their
    spread, mixed with the checker's verdicts."""
    from flywheel.llm.reward_ensemble import Normaliser, combine

    standardised = np.stack([Normaliser.fit(list(s)).apply(list(s)) for s in member_scores])
    reward, _ = combine(standardised, disagreement_penalty)
    return mix_rewards(reward, checks, verifiable_weight)


def score_samples(
    config: Config,
    round_id: int,
    champion: ModelVersion,
    prompts: Sequence[Conversation],
    completions: Sequence[str],
) -> SampleRewards:
    """The reward of each (prompt, completion) sample (see the module doc)."""
    cfg = config.training.online_dpo
    weight = cfg.verifiable_reward_weight
    conversations = [
        [*prompt, {"role": "assistant", "content": completion}]
        for prompt, completion in zip(prompts, completions, strict=True)
    ]
    with reward_models(config, round_id, champion) as models:
        member_scores = _member_scores(models.paths, conversations, config.training.rm.max_length)
    checks = checker_rewards(prompts, completions) if weight > 0 else [None] * len(completions)
    rewards = combine_rewards(member_scores, checks, weight, cfg.disagreement_penalty)
    scored_by = models.description + "".join(
        f"; {name} {value:g}"
        for name, value in (
            ("disagreement penalty", cfg.disagreement_penalty),
            ("checker weight", weight),
        )
        if value > 0
    )
    n_checked = sum(check is not None for check in checks)
    return SampleRewards(rewards.tolist(), scored_by, n_checked)


def _member_scores(
    paths: list[Path], conversations: list[Conversation], max_length: int
) -> list[list[float]]:
    """Each reward model's raw score of every conversation (its own tokenizer), one model in
    memory at a time; on a GPU the cache is emptied after, so the stage's training process
    (under accelerate) finds the memory free."""
    import torch

    from flywheel.llm import reward_ensemble as ens
    from flywheel.llm.stages.common import load_tokenizer

    scores = []
    for path in paths:
        (model,) = ens.load_members([path])
        scores.append(ens.score(model, load_tokenizer(path), conversations, max_length))
        del model
    if torch.cuda.is_available():
        gc.collect()  # the fitted members' trainers hold reference cycles
        torch.cuda.empty_cache()
    return scores


@contextmanager
def reward_models(config: Config, round_id: int, champion: ModelVersion) -> Iterator[RewardModels]:
    """The configured reward model(s), or an ensemble fit for the round (removed afterwards)."""
    named = config.training.online_dpo.reward_model
    if named is None:
        with fitted_reward_models(config, round_id, champion) as fitted:
            yield fitted
        return
    paths = reward_members(Path(named))
    if not paths:
        raise RewardUnavailable(reward_model_problem(named))
    what = f"reward model {named}" if len(paths) == 1 else f"{len(paths)} reward models in {named}"
    yield RewardModels(paths, what)


def require_reward_models(config: Config, round_id: int) -> None:
    """Raise `RewardUnavailable` when the round cannot have reward models (checked before any
    sample is generated): the named path holds none, or too few DPO pairs to fit them."""
    named = config.training.online_dpo.reward_model
    if named is not None:
        if not reward_members(Path(named)):
            raise RewardUnavailable(reward_model_problem(named))
        return
    min_pairs = config.training.rm.min_examples
    with connect_warehouse(config.warehouse) as con:
        query = read_query("online_reward_pairs_count")
        n_this_round, n_earlier = con.execute(query, {"round_id": round_id}).fetchone()
    cap = config.training.online_dpo.reward_fit_replay_rows
    n_pairs = n_this_round + (n_earlier if cap is None else min(n_earlier, cap))
    if n_pairs < min_pairs:
        raise RewardUnavailable(unavailable_reason(round_id, n_pairs, min_pairs))


@dataclass(frozen=True)
class FitPairs:
    """The DPO pairs the reward models are fit on: the round's and the earlier rounds' kept."""

    rows: list[dict]
    n_earlier_available: int  # earlier rounds' pairs there are
    replay_rows: int | None  # training.online_dpo.reward_fit_replay_rows; None: no cap

    def describe(self) -> str:
        """`120 DPO pairs` or, capped, `120 DPO pairs (100 of 950 earlier by ...)`."""
        text = f"{len(self.rows)} DPO pairs"
        if self.replay_rows is None or self.n_earlier_available == 0:
            return text
        n_kept = min(self.replay_rows, self.n_earlier_available)
        return (
            f"{text} ({n_kept} of {self.n_earlier_available} earlier by "
            "training.online_dpo.reward_fit_replay_rows)"
        )


def reward_fit_pairs(config: Config, round_id: int) -> FitPairs:
    """The DPO pairs mined up to and including the round (TRL's prompt/chosen/rejected), the
    earlier rounds' capped by `training.online_dpo.reward_fit_replay_rows`."""
    cap = config.training.online_dpo.reward_fit_replay_rows
    rows, n_earlier = dpo_pairs_up_to(config.warehouse, round_id, cap)
    return FitPairs(rows, n_earlier, cap)


def unavailable_reason(round_id: int, n_pairs: int, min_pairs: int) -> str:
    return (
        f"round {round_id}: {n_pairs} DPO pairs mined up to this round, fewer than "
        f"training.rm.min_examples ({min_pairs}), to fit the reward models that rank the "
        "champion's samples. Fix: run dpo or rm+rl rounds first (their pairs accumulate), "
        "lower training.rm.min_examples, or set training.online_dpo.reward_model to a reward "
        "model (e.g. an rm+rl round's <candidate>-rm folder)"
    )


@contextmanager
def fitted_reward_models(
    config: Config, round_id: int, champion: ModelVersion
) -> Iterator[RewardModels]:
    """`training.rm.ensemble_size` reward models fit from the champion on the DPO pairs mined
    up to the round (`reward_fit_pairs`), in `<output_dir>/online-rm-r<round>` until the
    samples are scored."""
    from flywheel.llm.stages.reward_model import member_path, train_reward_ensemble
    from flywheel.tasks.train import stage_setup

    rm_cfg = config.training.rm
    pairs = reward_fit_pairs(config, round_id)
    rows = pairs.rows
    if len(rows) < rm_cfg.min_examples:
        raise RewardUnavailable(unavailable_reason(round_id, len(rows), rm_cfg.min_examples))
    k = rm_cfg.ensemble_size
    out_path = Path(config.training.output_dir) / f"online-rm-r{round_id}"
    shutil.rmtree(out_path, ignore_errors=True)  # left by a run killed while fitting
    step_logger(__name__).info(
        "round %d online-dpo: fitting %d reward model%s from %s on %s mined up to this round "
        "to rank the champion's samples",
        round_id,
        k,
        "" if k == 1 else "s",
        champion.version_id,
        pairs.describe(),
    )
    seed = config.training.seed + round_id
    try:
        fit = train_reward_ensemble(
            champion.checkpoint_path, rows, out_path, rm_cfg, seed, 0.0, setup=stage_setup(config)
        )
        heldout = fit.metrics.get("rm_ensemble_heldout_accuracy")
        accuracy = "" if heldout is None else f", held-out pair accuracy {heldout:.2f}"
        models = "a reward model" if k == 1 else f"{k} reward models"
        yield RewardModels(
            [member_path(out_path, m, k) for m in range(k)],
            f"{models} fit from {champion.version_id} on {len(rows)} DPO pairs up to round "
            f"{round_id}{accuracy}",
        )
    finally:
        shutil.rmtree(out_path, ignore_errors=True)
