"""The objective guard's figures for a round (issue 32): candidate and champion on an objective set.

Which set (`objective_comparison`):

- `evaluation.objective_set` (a user's checkable JSONL, pool/objective_set.py): both models
  answer its prompts greedily from their local checkpoints (the student's `max_new_tokens`,
  `batch_size`, `device`), and each reply is right when the answer it commits to equals the
  expected one (evaluators/objective.py). A version is measured once per version of the file:
  a later round (the champion was an earlier round's candidate) or a rerun reuses the counts
  stored with an earlier A/B (`objective_stored.sql`).
- otherwise the sandbox's checkers on both models' stored answers to the held-out prompts
  (nothing generated): the prompts both answered that a checker can check.
- neither (a round off the sandbox without `objective_set`, or a model without a local
  checkpoint): no comparison, and the reason why, for the guard to say it cannot apply.

The rule is evaluators/objective.py; tasks/evaluate.py applies it and stores the figures.
"""

from __future__ import annotations

import time
from typing import Any

from flywheel.config import Config
from flywheel.evaluators.objective import (
    ObjectiveComparison,
    ObjectiveScore,
    ObjectiveVerdict,
    reply_is_right,
    score_objective,
)
from flywheel.evaluators.skills import check_answer
from flywheel.logs import step_logger
from flywheel.pool.objective_set import ObjectiveSet, read_objective_set
from flywheel.warehouse.store import connect_warehouse, read_query

NO_SET = (
    "no objective set (no held-out prompt the sandbox's checkers can check, and no "
    "evaluation.objective_set)"
)


def _score(correct: list[bool], config: Config) -> ObjectiveScore | None:
    evaluation = config.evaluation
    return score_objective(
        correct, n_samples=evaluation.bootstrap_samples, seed=evaluation.seed, ci=evaluation.ci
    )


def checked_verdicts(answer_rows: list[tuple]) -> list[tuple[bool, bool]]:
    """(candidate right, champion right) for each `objective_heldout_answers` row whose prompt
    a sandbox checker can check."""
    verdicts = [
        (check_answer(prompt, candidate_text), check_answer(prompt, champion_text))
        for _, prompt, candidate_text, champion_text in answer_rows
    ]
    return [(c, h) for c, h in verdicts if c is not None and h is not None]


def sandbox_comparison(config: Config, candidate: str, champion: str) -> ObjectiveComparison | None:
    """Both models' held-out answers checked by the sandbox's checkers, on the prompts both
    answered that a checker can check; None when there is none."""
    params = {"candidate": candidate, "champion": champion}
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("objective_heldout_answers"), params).fetchall()
    checked = checked_verdicts(rows)
    if not checked:
        return None
    candidate_score = _score([c for c, _ in checked], config)
    champion_score = _score([h for _, h in checked], config)
    if candidate_score is None or champion_score is None:
        return None
    source = f"the sandbox's checkers on {len(checked)} held-out prompts"
    return ObjectiveComparison(source, candidate_score, champion_score)


def checkpoint_of(config: Config, version_id: str) -> str | None:
    """The version's local checkpoint directory, or None when it has none (an endpoint)."""
    from flywheel.llm.checkpoints import is_checkpoint

    params = {"version_id": version_id}
    with connect_warehouse(config.warehouse) as con:
        row = con.execute(read_query("version_checkpoint"), params).fetchone()
    return row[0] if row is not None and row[0] and is_checkpoint(row[0]) else None


def stored_score(config: Config, version_id: str, set_sha256: str) -> ObjectiveScore | None:
    """The version's score on this version of the file as first stored with an A/B, or None."""
    params = {"version_id": version_id, "set_sha256": set_sha256}
    with connect_warehouse(config.warehouse) as con:
        row = con.execute(read_query("objective_stored"), params).fetchone()
    if row is None:
        return None
    n_items, n_correct = row
    return _score([True] * n_correct + [False] * (n_items - n_correct), config)


def measured_score(config: Config, checkpoint: str, objective: ObjectiveSet) -> ObjectiveScore:
    """The checkpoint's greedy replies to every item, checked against the expected answers."""
    from flywheel.llm.checkpoints import generate_answers

    student = config.student
    replies = generate_answers(
        checkpoint,
        [item.messages for item in objective.items],
        max_new_tokens=student.max_new_tokens,
        batch_size=student.batch_size,
        device=student.device,
    )
    correct = [
        reply_is_right(i.answer, r.text) for i, r in zip(objective.items, replies, strict=True)
    ]
    score = _score(correct, config)
    assert score is not None  # a read set has items
    return score


def file_score(
    config: Config, round_id: int, version_id: str, objective: ObjectiveSet
) -> ObjectiveScore | None:
    """The version's score on the user's file: stored, or measured now; None without a local
    checkpoint."""
    stored = stored_score(config, version_id, objective.sha256)
    if stored is not None:
        return stored
    checkpoint = checkpoint_of(config, version_id)
    if checkpoint is None:
        return None
    started = time.monotonic()
    score = measured_score(config, checkpoint, objective)
    step_logger(__name__).info(
        "round %d: %s answered the objective set %s (%d items) in %.0f s",
        round_id,
        version_id,
        objective.path,
        len(objective.items),
        time.monotonic() - started,
    )
    return score


def file_comparison(
    config: Config, round_id: int, candidate: str, champion: str, path: str
) -> tuple[ObjectiveComparison | None, str]:
    """Both models on the user's file, or None and why (a model without a local checkpoint)."""
    objective = read_objective_set(path)
    candidate_score = file_score(config, round_id, candidate, objective)
    champion_score = file_score(config, round_id, champion, objective)
    if candidate_score is None or champion_score is None:
        unmeasured = [
            v for v, s in ((candidate, candidate_score), (champion, champion_score)) if s is None
        ]
        return None, (
            f"{' and '.join(unmeasured)} cannot answer evaluation.objective_set {path} (no "
            "local checkpoint)"
        )
    source = f"{path}, {len(objective.items)} items"
    comparison = ObjectiveComparison(
        source, candidate_score, champion_score, set_sha256=objective.sha256
    )
    return comparison, ""


def objective_comparison(
    config: Config, round_id: int, candidate: str, champion: str
) -> tuple[ObjectiveComparison | None, str]:
    """Candidate and champion on the round's objective set (see the module doc), or None and
    why there is none."""
    path = config.evaluation.objective_set
    if path is not None:
        return file_comparison(config, round_id, candidate, champion, path)
    comparison = sandbox_comparison(config, candidate, champion)
    return comparison, "" if comparison is not None else NO_SET


def objective_columns(
    comparison: ObjectiveComparison | None,
    verdict: ObjectiveVerdict | None,
    max_drop: float | None,
) -> dict[str, Any]:
    """The `evaluations` columns of the objective guard (migration 016); None where unknown."""
    columns: dict[str, Any] = {
        "objective_outcome": verdict.outcome if verdict is not None else None,
        "objective_max_drop": max_drop,
    }
    if comparison is None:
        return columns
    columns |= {
        "objective_source": "objective_set" if comparison.set_sha256 else "sandbox_checkers",
        "objective_set_sha256": comparison.set_sha256,
        "objective_n_items": comparison.candidate.n_items,
    }
    for side, score in (("candidate", comparison.candidate), ("champion", comparison.champion)):
        columns |= {
            f"objective_correct_{side}": score.n_correct,
            f"objective_accuracy_{side}": score.accuracy,
            f"objective_accuracy_{side}_ci_low": score.ci_low,
            f"objective_accuracy_{side}_ci_high": score.ci_high,
        }
    return columns
