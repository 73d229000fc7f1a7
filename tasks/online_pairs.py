"""The online-dpo stage's pairs, made by the train step before the stage is launched (in the
parent process: the warehouse is written from here only, never from a training process).

1. sample  the champion answers each active pool prompt of the round's slice
           `training.online_dpo.n_samples` times through `student.backend`, the same path as the
           round's answers (tasks/answer.py: local generation, a served checkpoint or the fixed
           endpoint), sampled at the stage's `temperature` and seeded by student.seed +
           sample_idx; stored as `responses` with sample_idx 1..n (sample 0 stays the round's
           answer, the one its battles judged); a stored sample is reused, never generated again
2. score   reward models, and the checkers where `verifiable_reward_weight` is set
           (tasks/online_scores.py)
3. pair    per prompt, the best sample is chosen and the worst rejected; a prompt whose best and
           worst tie (the same reward, or the same text) or differ by less than `min_score_gap`
           gives no pair
4. store   `preference_pairs` of kind online-dpo, origin online, battle_id null, with the
           samples' response ids and rewards (warehouse/migrations/015_online_dpo_pairs.sql)

A round whose pairs are stored makes none again: a rerun samples, fits and scores nothing and
trains on the same pairs. Without reward models for the round (too few mined DPO pairs to fit
them) the stage is skipped, and the reason names the fixes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.figures import count
from flywheel.llm.calls import ProgressFn
from flywheel.llm.stages.online_dpo import STAGE_NAME, online_dpo_problems
from flywheel.logs import step_logger
from flywheel.tasks.answer import answer_as_student
from flywheel.tasks.online_scores import (
    RewardUnavailable,
    require_reward_models,
    score_samples,
)
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query, transaction
from flywheel.warehouse.writes import insert_new

ORIGIN = "online"


@dataclass(frozen=True)
class ScoredSample:
    """One of the champion's samples for a prompt, with its reward."""

    prompt_id: str
    sample_idx: int
    response_id: str
    text: str
    reward: float


@dataclass(frozen=True)
class OnlinePair:
    """A prompt's best sample (chosen) and worst sample (rejected)."""

    prompt_id: str
    chosen: ScoredSample
    rejected: ScoredSample
    n_scored: int  # the prompt's samples that were scored

    @property
    def score_gap(self) -> float:
        return self.chosen.reward - self.rejected.reward


@dataclass(frozen=True)
class OnlinePairsReport:
    """What making the round's pairs did."""

    round_id: int
    n_prompts: int
    n_samples: int  # samples stored for those prompts
    n_generated: int  # of them, generated now (0 on a rerun)
    n_pairs: int  # the round's pairs stored
    n_skipped: int  # prompts without a pair: best and worst tied or too close
    scored_by: str
    reused: bool = False  # the pairs were stored by an earlier run of the round

    def summary(self) -> str:
        if self.reused:
            return (
                f"round {self.round_id} online-dpo: {count(self.n_pairs)} pairs of the "
                "champion's samples stored when the round first ran (nothing sampled or scored)"
            )
        return (
            f"round {self.round_id} online-dpo: {count(self.n_samples)} samples of "
            f"{count(self.n_prompts)} prompts ({count(self.n_generated)} generated now), scored "
            f"by {self.scored_by}: {count(self.n_pairs)} best-vs-worst pairs, "
            f"{count(self.n_skipped)} prompts without one (tied or under min_score_gap)"
        )


def best_worst_pairs(
    samples: Sequence[ScoredSample], min_gap: float
) -> tuple[list[OnlinePair], int]:
    """(each prompt's best-vs-worst pair, how many prompts gave none). The best sample is the
    highest reward (ties: the lowest sample_idx), the worst the lowest (ties: the highest
    sample_idx); a prompt with one sample, equal rewards or texts, or a gap under `min_gap`
    gives none. Pairs come in prompt order."""
    by_prompt: dict[str, list[ScoredSample]] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt_id, []).append(sample)
    pairs: list[OnlinePair] = []
    for prompt_id in sorted(by_prompt):
        group = by_prompt[prompt_id]
        best = max(group, key=lambda s: (s.reward, -s.sample_idx))
        worst = min(group, key=lambda s: (s.reward, -s.sample_idx))
        gap = best.reward - worst.reward
        if gap > 0 and gap >= min_gap and best.text != worst.text:
            pairs.append(OnlinePair(prompt_id, best, worst, len(group)))
    return pairs, len(by_prompt) - len(pairs)


def pair_id_for(round_id: int, prompt_id: str) -> str:
    """As warehouse/queries/mine_pairs.sql names a pair: md5 of kind|round|prompt."""
    return hashlib.md5(f"{STAGE_NAME}|{round_id}|{prompt_id}".encode()).hexdigest()


def pair_row(
    round_id: int, champion_id: str, pair: OnlinePair, min_gap: float, scored_by: str
) -> dict:
    """The `preference_pairs` row of an online pair."""
    return {
        "pair_id": pair_id_for(round_id, pair.prompt_id),
        "kind": STAGE_NAME,
        "origin": ORIGIN,
        "round_id": round_id,
        "prompt_id": pair.prompt_id,
        "battle_id": None,
        "chosen_response_id": pair.chosen.response_id,
        "rejected_response_id": pair.rejected.response_id,
        "chosen_model": champion_id,
        "rejected_model": champion_id,
        "rule_kind": STAGE_NAME,
        "rule_min_gap": min_gap,
        "score_gap": pair.score_gap,
        "chosen_score": pair.chosen.reward,
        "rejected_score": pair.rejected.reward,
        "n_scored": pair.n_scored,
        "scored_by": scored_by,
        "created_at": now_utc(),
    }


def prepare_stage_rows(
    config: Config,
    round_id: int,
    stage: str,
    champion: ModelVersion,
    on_progress: ProgressFn | None = None,
) -> str | None:
    """The train step's hook before a stage reads its rows: for online-dpo, the round's pairs
    (`make_online_pairs`). None, or why the stage has no rows this round (it is skipped)."""
    if stage != STAGE_NAME:
        return None
    try:
        make_online_pairs(config, round_id, champion, on_progress)
    except RewardUnavailable as e:
        step_logger(__name__).warning("%s", e)
        return str(e)
    return None


def make_online_pairs(
    config: Config,
    round_id: int,
    champion: ModelVersion,
    on_progress: ProgressFn | None = None,
) -> OnlinePairsReport:
    """Sample, score, pair and store (see the module doc); `on_progress` hears of the samples."""
    problems = online_dpo_problems(config)
    if problems:
        raise InputError("; ".join(problems))
    stored = stored_pair_count(config, round_id)
    if stored:
        return _logged(OnlinePairsReport(round_id, 0, 0, 0, stored, 0, "", reused=True))
    require_reward_models(config, round_id)
    cfg = config.training.online_dpo
    prompts = slice_prompts(config, round_id)
    n_generated = sample_answers(config, round_id, list(prompts), champion, on_progress)
    samples = stored_samples(config, champion.version_id, list(prompts), cfg.n_samples)
    if not samples:
        return _logged(OnlinePairsReport(round_id, len(prompts), 0, n_generated, 0, 0, "-"))
    rewards = score_samples(
        config,
        round_id,
        champion,
        [prompts[pid] for pid, *_ in samples],
        [text for *_, text in samples],
    )
    scored = [
        ScoredSample(pid, idx, rid, text, reward)
        for (pid, idx, rid, text), reward in zip(samples, rewards.rewards, strict=True)
    ]
    pairs, n_skipped = best_worst_pairs(scored, cfg.min_score_gap)
    rows = [
        pair_row(round_id, champion.version_id, p, cfg.min_score_gap, rewards.scored_by)
        for p in pairs
    ]
    with connect_warehouse(config.warehouse) as con, transaction(con):
        insert_new(con, "preference_pairs", rows, ["kind", "round_id", "prompt_id"])
    report = OnlinePairsReport(
        round_id, len(prompts), len(samples), n_generated, len(pairs), n_skipped,
        rewards.scored_by,
    )  # fmt: skip
    return _logged(report)


def _logged(report: OnlinePairsReport) -> OnlinePairsReport:
    step_logger(__name__).info(report.summary())
    return report


def sampling_config(config: Config) -> Config:
    """`config` with the student sampling at the stage's temperature (the rest unchanged)."""
    cfg = config.training.online_dpo
    student = config.student.model_copy(update={"do_sample": True, "temperature": cfg.temperature})
    return config.model_copy(update={"student": student})


def sample_answers(
    config: Config,
    round_id: int,
    prompt_ids: list[str],
    champion: ModelVersion,
    on_progress: ProgressFn | None = None,
) -> int:
    """The champion's samples 1..n of every prompt, through its student backend (stored ones
    reused); how many were generated now. Progress counts samples over all n."""
    n_samples = config.training.online_dpo.n_samples
    sampling = sampling_config(config)
    n_total, n_generated = n_samples * len(prompt_ids), 0
    for sample_idx in range(1, n_samples + 1):
        done_before = (sample_idx - 1) * len(prompt_ids)

        def progress(n_done: int, _: int, offset: int = done_before) -> None:
            if on_progress is not None:
                on_progress(offset + n_done, n_total)

        counts = answer_as_student(
            sampling,
            round_id,
            prompt_ids,
            champion.version_id,
            champion.checkpoint_path,
            sample_idx=sample_idx,
            on_progress=progress,
        )
        n_generated += counts.n_generated
    return n_generated


def slice_prompts(config: Config, round_id: int) -> dict[str, list[dict[str, str]]]:
    """The round's active pool prompts: prompt id -> messages, in prompt order."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("online_slice_prompts"), {"slice_id": round_id}).fetchall()
    return {prompt_id: json.loads(messages) for prompt_id, messages in rows}


def stored_samples(
    config: Config, model_id: str, prompt_ids: list[str], n_samples: int
) -> list[tuple[str, int, str, str]]:
    """(prompt id, sample_idx, response id, text) of the model's stored samples 1..n."""
    params = {"model_id": model_id, "prompt_ids": prompt_ids, "n_samples": n_samples}
    with connect_warehouse(config.warehouse) as con:
        return [tuple(r) for r in con.execute(read_query("online_samples"), params).fetchall()]


def stored_pair_count(config: Config, round_id: int) -> int:
    """How many online-dpo pairs the round holds."""
    with connect_warehouse(config.warehouse) as con:
        return len(
            con.execute(read_query("online_pairs_stored"), {"round_id": round_id}).fetchall()
        )
