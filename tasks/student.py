"""How the model under training answers: one backend object, chosen once from `student.backend`.

- `local`: Hugging Face `generate` (llm/checkpoints.py), the checkpoint loaded once, prompts
  batched by length with left padding, on GPU when one is present; each chunk stored when it
  ends.
- `server` / `vllm`: the version's checkpoint served for the step by llm/serving.py, answering
  like a reference (call cache, concurrency, retries), then stopped.
- `endpoint`: the fixed `student.endpoint`, checked (or reloaded) to serve that version.

Every backend has one way to answer: `answer(asked, checkpoint, writer, on_progress)`, which
stores a `responses` row per new answer (recording the backend, the served model and the
checkpoint's weights hash) and returns the counts. The fixed endpoint adds its rows to the
step's `writer`; local generation and served versions run in a thread with a writer of their
own. A student that answers none of the prompts it was asked fails the step.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from pathlib import Path

from flywheel.config import Config, EndpointConfig
from flywheel.llm.calls import ProgressFn
from flywheel.tasks.endpoint_answers import answer_through_endpoint, answer_through_endpoint_now
from flywheel.tasks.responses import (
    AnswerSource,
    Asked,
    ModelAnswerCounts,
    log_counts,
    pending_prompts,
    require_some_answers,
    response_row,
)
from flywheel.warehouse.reads import load_prompts
from flywheel.warehouse.writer import RowWriter


class StudentBackend(ABC):
    """The model under training's way to answer a batch of prompts (see the module doc)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    @abstractmethod
    async def answer(
        self,
        asked: Asked,
        checkpoint: str | None,
        writer: RowWriter,
        on_progress: ProgressFn | None = None,
    ) -> ModelAnswerCounts:
        """Answer the asked prompts without a stored answer as the version in `checkpoint`."""

    def _require_checkpoint(self, asked: Asked, checkpoint: str | None) -> str:
        if checkpoint is None:
            raise ValueError(
                f"{asked.model_id} answers with student.backend "
                f"{self.config.student.answer_backend}, which needs its checkpoint directory, "
                "but none was given"
            )
        return checkpoint


def student_backend(config: Config) -> StudentBackend:
    """The backend `student.backend` names (endpoint when only `student.endpoint` is set)."""
    backend = config.student.answer_backend
    if backend == "local":
        return LocalStudent(config)
    if backend == "endpoint":
        return EndpointStudent(config)
    return ServedStudent(config)


class _CheckpointStudent(StudentBackend):
    """A backend that answers from the version's checkpoint directory, in a thread with a
    writer of its own (`_answer_from` does the work)."""

    async def answer(
        self,
        asked: Asked,
        checkpoint: str | None,
        writer: RowWriter,
        on_progress: ProgressFn | None = None,
    ) -> ModelAnswerCounts:
        path = self._require_checkpoint(asked, checkpoint)
        return await asyncio.to_thread(self._answer_from, asked, path, on_progress)

    @abstractmethod
    def _answer_from(
        self, asked: Asked, checkpoint: str, on_progress: ProgressFn | None
    ) -> ModelAnswerCounts:
        """Answer the asked prompts without a stored answer from `checkpoint`."""


class LocalStudent(_CheckpointStudent):
    """Generation in this process from the checkpoint (in a thread, a writer of its own)."""

    def _answer_from(
        self, asked: Asked, checkpoint: str, on_progress: ProgressFn | None
    ) -> ModelAnswerCounts:
        """The checkpoint is loaded once; prompts are sorted by length (short batches pad
        little), then generated in chunks of `8 * batch_size` prompts, each stored when it ends
        (a crash loses at most one chunk). Decoding follows `config.student` (greedy or sampled,
        max_new_tokens, batch_size, device) and stops at the checkpoint's end-of-turn tokens."""
        from flywheel.llm.checkpoints import LocalGenerator, weights_sha256

        student = self.config.student
        missing, counts = pending_prompts(self.config, asked, on_progress)
        if not missing:
            return counts
        prompts = load_prompts(self.config.warehouse, missing)
        generator = LocalGenerator.load(checkpoint, student.device)
        source = AnswerSource("local", str(checkpoint), weights_sha256(checkpoint))
        lengths = {pid: len(generator.encode(prompts[pid].messages)) for pid in missing}
        by_length = sorted(missing, key=lambda pid: lengths[pid], reverse=True)
        writer = RowWriter(self.config.warehouse)
        chunk_size = 8 * student.batch_size
        for start in range(0, len(by_length), chunk_size):
            chunk = by_length[start : start + chunk_size]
            answers = generator.generate(
                [prompts[pid].messages for pid in chunk],
                max_new_tokens=student.max_new_tokens,
                batch_size=student.batch_size,
                do_sample=student.do_sample,
                temperature=student.temperature,
                seed=student.seed + asked.sample_idx,
            )
            for pid, answer in zip(chunk, answers, strict=True):
                row = response_row(
                    pid,
                    asked.model_id,
                    sample_idx=asked.sample_idx,
                    round_id=asked.round_id,
                    text=answer.text,
                    n_tokens=answer.n_tokens,
                    finish_reason=answer.finish_reason,
                    call_id=None,  # generated locally, no endpoint call
                    source=source,
                )
                writer.add("responses", row)
            writer.flush_now()
            counts.n_generated += len(chunk)
            if on_progress is not None:
                on_progress(counts.n_existing + counts.n_generated, counts.n_needed)
        log_counts(counts, f"local {checkpoint}")
        return counts


class ServedStudent(_CheckpointStudent):
    """The checkpoint served (`student.backend` server or vllm) only when answers are missing,
    answering like a reference, then stopped (in a thread, a writer of its own)."""

    def _answer_from(
        self, asked: Asked, checkpoint: str, on_progress: ProgressFn | None
    ) -> ModelAnswerCounts:
        from flywheel.llm.checkpoints import checkpoint_stops, weights_sha256
        from flywheel.llm.serving import EXIT_GRACE_S, serve_checkpoint, served_endpoint

        student = self.config.student
        missing, counts = pending_prompts(self.config, asked)
        if not missing:
            if on_progress is not None:
                on_progress(counts.n_existing, counts.n_needed)
            return counts
        stop_ids, stops = checkpoint_stops(checkpoint)
        weights = weights_sha256(checkpoint)
        log_dir = Path(self.config.training.output_dir) / "serve-logs"
        backend = student.answer_backend
        with serve_checkpoint(
            student.serve, backend, checkpoint, asked.model_id, log_dir
        ) as served:
            endpoint = served_endpoint(student, served, stop_ids, stops, asked.sample_idx)
            source = AnswerSource(backend, served.model, weights)
            counts = answer_through_endpoint_now(
                self.config, asked, endpoint, source=source, on_progress=on_progress
            )
            served.require_running(
                f"while answering ({counts.n_failed} prompts left unanswered)",
                grace_s=EXIT_GRACE_S if counts.n_failed else 0.0,
            )
        require_some_answers(counts, f"student.backend {backend} ({served.base_url})")
        return counts


class EndpointStudent(StudentBackend):
    """The fixed `student.endpoint`, made to answer as the version (its rows go to `writer`)."""

    async def answer(
        self,
        asked: Asked,
        checkpoint: str | None,
        writer: RowWriter,
        on_progress: ProgressFn | None = None,
    ) -> ModelAnswerCounts:
        from flywheel.llm.serving import fixed_endpoint

        endpoint = await asyncio.to_thread(
            fixed_endpoint, self.config.student, asked.model_id, checkpoint, asked.sample_idx
        )
        counts = await answer_through_endpoint(
            self.config,
            asked,
            endpoint,
            writer,
            source=fixed_endpoint_source(endpoint, checkpoint),
            on_progress=on_progress,
        )
        require_some_answers(counts, f"student.endpoint ({endpoint.base_url})")
        return counts


def fixed_endpoint_source(answering: EndpointConfig, checkpoint: str | None) -> AnswerSource:
    """Answers from `student.endpoint`: the model it was asked for, and the weights of the
    checkpoint it must serve when that checkpoint is on this machine."""
    from flywheel.llm.checkpoints import is_checkpoint, weights_sha256

    weights = weights_sha256(checkpoint) if checkpoint and is_checkpoint(checkpoint) else None
    return AnswerSource("endpoint", answering.model, weights)
