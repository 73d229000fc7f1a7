"""Step 2 of the round: the champion and every reference answer the round's prompts.

One row per answer in `responses`, keyed by hash(prompt_id, model_id, sample_idx): an answer
already stored is reused, never generated again (tasks/responses.py). The champion (and, in
the eval, each side) answers through its `StudentBackend` (tasks/student.py), chosen once from
`student.backend`: local generation, a checkpoint served for the step, or the fixed
`student.endpoint`. Each reference answers through its endpoint with the call cache of
`llm/calls.py` (tasks/endpoint_answers.py), concurrently with the champion. A reference whose
calls fail after their retries leaves those prompts without an answer: the failures are
counted, stored in `llm_calls` with their cause, and the round goes on with the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.config import Config, EndpointConfig
from flywheel.llm.calls import ProgressFn, run_sync
from flywheel.logs import step_logger
from flywheel.tasks.endpoint_answers import answer_through_endpoint
from flywheel.tasks.progress_sum import ProgressSum
from flywheel.tasks.responses import Asked, ModelAnswerCounts
from flywheel.tasks.student import student_backend
from flywheel.warehouse.writer import RowWriter


@dataclass
class AnswerReport:
    """Per-model counts of one answer step."""

    round_id: int
    purpose: str
    by_model: dict[str, ModelAnswerCounts] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(c.n_failed for c in self.by_model.values())

    def rows(self) -> list[dict[str, Any]]:
        """One dict per model, for a table artifact."""
        return [
            {k: v for k, v in vars(c).items() if k not in ("errors", "first_error")}
            | {"errors": dict(c.errors)}
            for c in self.by_model.values()
        ]

    def summary(self) -> str:
        parts = [
            f"{c.model_id}: {c.n_generated} new, {c.n_cached} cached, {c.n_existing} stored, "
            f"{c.n_failed} failed"
            for c in self.by_model.values()
        ]
        return f"round {self.round_id} answers ({self.purpose}): " + "; ".join(parts)


def answer_prompts(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    *,
    champion_id: str,
    champion_path: str | None,
    purpose: str = "train",
    references: Sequence[EndpointConfig] | None = None,
    on_progress: ProgressFn | None = None,
) -> AnswerReport:
    """The champion and each reference answer `prompt_ids`; already stored answers are reused.

    The champion answers through its student backend from `champion_path`; references
    (default `config.references`; pass [] for none) answer through their endpoints
    concurrently with the champion.
    """
    student = student_backend(config)
    if config.student.answer_backend != "endpoint" and champion_path is None:
        raise ValueError(
            f"the champion answers with student.backend {config.student.answer_backend} but "
            "no champion_path was given; pass the champion's checkpoint directory"
        )
    refs = list(config.references if references is None else references)
    model_ids = [champion_id, *(r.model_id for r in refs)]
    progress = ProgressSum(on_progress, dict.fromkeys(model_ids, len(set(prompt_ids))))

    async def main() -> list[ModelAnswerCounts]:
        writer = RowWriter(config.warehouse)
        champion = Asked(round_id, prompt_ids, champion_id)
        jobs = [
            student.answer(champion, champion_path, writer, progress.part(champion_id)),
            *(
                answer_through_endpoint(
                    config,
                    Asked(round_id, prompt_ids, ref.model_id),
                    ref,
                    writer,
                    on_progress=progress.part(ref.model_id),
                )
                for ref in refs
            ),
        ]
        async with writer, asyncio.TaskGroup() as group:
            tasks = [group.create_task(job) for job in jobs]
        return [task.result() for task in tasks]

    report = AnswerReport(round_id, purpose)
    for counts in run_sync(main()):
        report.by_model[counts.model_id] = counts
    step_logger(__name__).info(report.summary())
    return report


def answer_as_student(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    model_id: str,
    checkpoint: str | None,
    *,
    sample_idx: int = 0,
    on_progress: ProgressFn | None = None,
) -> ModelAnswerCounts:
    """One version of the model under training answers, through its student backend."""
    student = student_backend(config)
    asked = Asked(round_id, prompt_ids, model_id, sample_idx)

    async def main() -> ModelAnswerCounts:
        async with RowWriter(config.warehouse) as writer:
            return await student.answer(asked, checkpoint, writer, on_progress)

    return run_sync(main())
