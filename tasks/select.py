"""Step 3a of the round: which train battles the judge decides (`judge.selection`).

With the default strategy `all` every (champion, reference) battle is judged. Under a judge
budget (`max_battles`), `uncertain` fits a small reward-model ensemble from the champion on the
earlier rounds' preference pairs (`fit_replay_rows` caps the older rounds' ones, as a stage's
replay budget does), scores both answers of every battle, and keeps the battles it is least
certain about (evaluators/battle_selection.py); `likely_losses` keeps, by the same ensemble,
the battles the champion most likely lost; `random` keeps a seeded random subset, the
peer both are measured against (benchmarks/bench_selection.py). Every battle of the round is
recorded in `battle_selection`, judged or not, and a resumed round reuses that choice, so a
crash never changes which battles are paid for.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flywheel.config import Config
from flywheel.evaluators.battle_selection import (
    battle_uncertainty,
    highest,
    random_choice,
    reference_win_probabilities,
)
from flywheel.logs import step_logger
from flywheel.tasks.battle_plan import Pair
from flywheel.tasks.mine import dpo_pairs_up_to
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.reads import load_prompts, load_responses
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query, transaction
from flywheel.warehouse.writes import insert_new


@dataclass(frozen=True)
class Selection:
    """The battles to judge, of the round's `n_pairs`, and how they were chosen."""

    round_id: int
    pairs: list[Pair]
    n_pairs: int
    selector: str
    reused: bool = False

    def summary(self) -> str:
        again = " (stored when the round first ran)" if self.reused else ""
        return (
            f"round {self.round_id}: judging {len(self.pairs)} of {self.n_pairs} battles, "
            f"{self.selector}{again}"
        )


@dataclass(frozen=True)
class Scores:
    """The ensemble's view of each battle: mean P(reference wins) and its uncertainty."""

    p_reference_wins: np.ndarray
    uncertainty: np.ndarray
    selector: str


def select_train_battles(
    config: Config, round_id: int, pairs: Sequence[Pair], champion: ModelVersion
) -> Selection:
    """The (prompt, champion, reference) battles of `pairs` the judge decides this round."""
    selection = config.judge.selection
    logger = step_logger(__name__)
    if selection.strategy == "all":
        return Selection(round_id, list(pairs), len(pairs), "every battle (judge.selection all)")
    stored = _stored_selection(config, round_id)
    if stored is not None:
        chosen, selector = stored
        result = Selection(round_id, [p for p in pairs if p in chosen], len(pairs), selector, True)
        logger.info(result.summary())
        return result
    chosen_ids, strategy, selector, scores = _choose(config, round_id, pairs, champion)
    _store_selection(config, round_id, pairs, set(chosen_ids), strategy, selector, scores)
    result = Selection(round_id, [pairs[i] for i in chosen_ids], len(pairs), selector)
    logger.info(result.summary())
    return result


def _choose(
    config: Config, round_id: int, pairs: Sequence[Pair], champion: ModelVersion
) -> tuple[list[int], str, str, Scores | None]:
    """(indices of the battles to judge, the strategy used, how, in words, the ensemble's
    scores when it chose)."""
    strategy, budget = config.judge.selection.strategy, config.judge.selection.max_battles or 0
    if len(pairs) <= budget:
        return (
            list(range(len(pairs))),
            strategy,
            f"the budget of {budget} covers every battle",
            None,
        )
    if strategy in ("uncertain", "likely_losses"):
        scores, reason = _ensemble_scores(config, round_id, pairs, champion)
        if scores is not None:
            uncertain = strategy == "uncertain"
            ranking = scores.uncertainty if uncertain else scores.p_reference_wins
            how = "the most uncertain to" if uncertain else "the likeliest losses by"
            return highest(ranking, budget), strategy, f"{how} {scores.selector}", scores
        selector = f"at random: {reason}"
    else:
        selector = f"a seeded random {budget}"
    return _random_ids(config, round_id, len(pairs), budget), "random", selector, None


def _random_ids(config: Config, round_id: int, n_pairs: int, budget: int) -> list[int]:
    return random_choice(n_pairs, budget, config.training.seed + round_id)


def _stored_selection(config: Config, round_id: int) -> tuple[set[Pair], str] | None:
    """The round's stored choice (the selected battles and how), or None."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("selection_stored"), [round_id]).fetchall()
    if not rows:
        return None
    return {(r[0], r[1], r[2]) for r in rows if r[3]}, rows[0][4]


def _store_selection(
    config: Config,
    round_id: int,
    pairs: Sequence[Pair],
    chosen: set[int],
    strategy: str,
    selector: str,
    scores: Scores | None,
) -> None:
    created_at = now_utc()
    rows = [
        {
            "round_id": round_id,
            "prompt_id": prompt_id,
            "model_a": model_a,
            "model_b": model_b,
            "strategy": strategy,
            "uncertainty": None if scores is None else float(scores.uncertainty[i]),
            "p_reference_wins": None if scores is None else float(scores.p_reference_wins[i]),
            "selected": i in chosen,
            "selector": selector,
            "created_at": created_at,
        }
        for i, (prompt_id, model_a, model_b) in enumerate(pairs)
    ]
    with connect_warehouse(config.warehouse) as con, transaction(con):
        insert_new(con, "battle_selection", rows)


def _earlier_pairs(config: Config, round_id: int) -> list[dict]:
    """The preference pairs mined before this round (TRL's prompt / chosen / rejected): the
    last round's, and older rounds' capped by `judge.selection.fit_replay_rows`."""
    if round_id <= 1:
        return []
    rows, _ = dpo_pairs_up_to(
        config.warehouse, round_id - 1, config.judge.selection.fit_replay_rows
    )
    return rows


def _ensemble_scores(
    config: Config, round_id: int, pairs: Sequence[Pair], champion: ModelVersion
) -> tuple[Scores | None, str]:
    """The fitted ensemble's scores of every battle, or None and why it could not be fit."""
    rows = _earlier_pairs(config, round_id)
    min_pairs = config.training.rm.min_examples
    if len(rows) < min_pairs:
        return None, (
            f"{len(rows)} earlier preference pairs, fewer than training.rm.min_examples "
            f"({min_pairs}), to fit the reward models on"
        )
    if not champion.checkpoint_path or not Path(champion.checkpoint_path).is_dir():
        return None, f"the champion {champion.version_id} has no local checkpoint to fit from"
    conversations = _battle_conversations(config, pairs)
    z_champion, z_reference, accuracy = _fit_and_score(
        config, round_id, champion, rows, conversations
    )
    p_each = reference_win_probabilities(z_champion, z_reference)
    held_out = "" if accuracy is None else f", held-out pair accuracy {accuracy:.2f}"
    selector = (
        f"{z_champion.shape[0]} reward models fit from {champion.version_id} on {len(rows)} "
        f"earlier pairs{held_out}"
    )
    return Scores(p_each.mean(axis=0), battle_uncertainty(p_each), selector), ""


def _battle_conversations(
    config: Config, pairs: Sequence[Pair]
) -> tuple[list[list[dict[str, str]]], list[list[dict[str, str]]]]:
    """(prompt + champion's answer, prompt + reference's answer) of every battle."""
    prompt_ids = [p[0] for p in pairs]
    prompts = load_prompts(config.warehouse, prompt_ids)
    models = sorted({m for p in pairs for m in p[1:]})
    answers = load_responses(config.warehouse, prompt_ids, models)

    def with_answer(prompt_id: str, model: str) -> list[dict[str, str]]:
        answer = {"role": "assistant", "content": answers[(prompt_id, model)][1]}
        return [*prompts[prompt_id].messages, answer]

    return (
        [with_answer(pid, champion) for pid, champion, _ in pairs],
        [with_answer(pid, reference) for pid, _, reference in pairs],
    )


def _fit_and_score(
    config: Config,
    round_id: int,
    champion: ModelVersion,
    rows: list[dict],
    conversations: tuple[list, list],
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Fit `judge.selection.ensemble_size` reward models from the champion on `rows`; each
    member's standardised scores of the champion's and the reference's answers (models x
    battles), and the ensemble's held-out pair accuracy (with training.rm.heldout_fraction)."""
    from transformers import AutoTokenizer

    from flywheel.llm import reward_ensemble as ens
    from flywheel.llm.stages.reward_model import member_path, train_reward_ensemble
    from flywheel.tasks.train import stage_setup

    k = config.judge.selection.ensemble_size
    rm_cfg = config.training.rm.model_copy(update={"ensemble_size": k})
    out_path = Path(config.training.output_dir) / f"selector-r{round_id}"
    shutil.rmtree(out_path, ignore_errors=True)  # left by a run killed while fitting
    step_logger(__name__).info(
        "round %d: fitting %d reward models from %s on %d earlier preference pairs to choose "
        "the battles to judge",
        round_id,
        k,
        champion.version_id,
        len(rows),
    )
    seed = config.training.seed + round_id
    try:
        fit = train_reward_ensemble(
            champion.checkpoint_path, rows, out_path, rm_cfg, seed, 0.0, setup=stage_setup(config)
        )
        members = ens.load_members([member_path(out_path, m, k) for m in range(k)])
        tokenizer = AutoTokenizer.from_pretrained(champion.checkpoint_path)
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        champion_side, reference_side = conversations
        z = [
            [
                normaliser.apply(ens.score(model, tokenizer, side, rm_cfg.max_length))
                for side in (champion_side, reference_side)
            ]
            for model, normaliser in zip(members, fit.normalisers, strict=True)
        ]
    finally:
        shutil.rmtree(out_path, ignore_errors=True)
    z_champion = np.stack([pair[0] for pair in z])
    z_reference = np.stack([pair[1] for pair in z])
    return z_champion, z_reference, fit.metrics.get("rm_ensemble_heldout_accuracy")
