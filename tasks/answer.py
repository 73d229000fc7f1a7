"""Step 2 of the round: the champion and every reference answer the round's prompts.

One row per answer in `responses`, keyed by hash(prompt_id, model_id, sample_idx): an answer
already stored is reused, never generated again. The champion (and, in the eval, each side)
answers through `student.backend`: `local` (Hugging Face `generate`, the checkpoint loaded
once, batched by length with left padding, on GPU when one is present), `server` / `vllm`
(the version's checkpoint served for the step by llm/serving.py, then stopped) or
`endpoint` (the fixed `student.endpoint`, checked to serve that version). Each reference
answers through its endpoint with the call cache of `llm/calls.py`. Every row records its
backend, the served model and the checkpoint's weights hash. A reference whose calls fail after their retries leaves those prompts
without an answer: the failures are counted, stored in `llm_calls` with their cause, and the
round goes on with the others.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import Config, EndpointConfig
from flywheel.llm.calls import CallBatchStats, ProgressFn, run_calls, run_sync
from flywheel.llm.client import CallResult, ChatRequest, RetryPolicy
from flywheel.llm.context import fit_conversation
from flywheel.logs import step_logger
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.reads import load_prompts, load_responses
from flywheel.warehouse.store import now_utc
from flywheel.warehouse.writer import RowWriter


@dataclass
class ModelAnswerCounts:
    """What one model's answering did: n_needed = n_existing + n_cached + n_generated + n_failed."""

    model_id: str
    n_needed: int = 0
    n_existing: int = 0  # a `responses` row was already stored
    n_cached: int = 0  # answered from the call cache (no request sent)
    n_generated: int = 0  # generated locally or sent to the endpoint now
    n_failed: int = 0  # no answer after the retries; the cause is in llm_calls.error
    n_cut: int = 0  # prompts whose oldest turns were dropped to fit the endpoint's context
    cost_usd: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None  # the first failed call's cause, with the server's message

    def add_calls(self, stats: CallBatchStats, n_missing: int) -> None:
        """The outcome of answering `n_missing` prompts through an endpoint."""
        self.n_cached = stats.n_cached
        self.n_failed = stats.n_failed
        self.n_generated = n_missing - stats.n_cached - stats.n_failed
        self.cost_usd = stats.cost_usd
        self.errors = stats.errors


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


def response_id_for(prompt_id: str, model_id: str, sample_idx: int = 0) -> str:
    """The natural key of an answer: hash of (prompt, model, sample)."""
    return content_id(["response", prompt_id, model_id, sample_idx])


@dataclass(frozen=True)
class AnswerSource:
    """Which backend and which weights answered: stored on every `responses` row."""

    backend: str  # local | server | vllm | endpoint | reference
    served_model: str | None  # the request `model`, or the checkpoint path of a local answer
    weights_sha256: str | None  # of the checkpoint's safetensors; None for references

    def cache_tag(self) -> str:
        return f"backend={self.backend};weights={self.weights_sha256 or '-'}"


def reference_source(endpoint: EndpointConfig) -> AnswerSource:
    return AnswerSource("reference", endpoint.model, None)


def response_row(
    prompt_id: str,
    model_id: str,
    *,
    sample_idx: int,
    round_id: int,
    text: str,
    n_tokens: int | None,
    finish_reason: str | None,
    call_id: str | None,
    source: AnswerSource | None = None,
) -> dict[str, Any]:
    return {
        "response_id": response_id_for(prompt_id, model_id, sample_idx),
        "prompt_id": prompt_id,
        "model_id": model_id,
        "sample_idx": sample_idx,
        "round_id": round_id,
        "response_text": text,
        "n_tokens": n_tokens,
        "finish_reason": finish_reason,
        "call_id": call_id,
        "backend": source.backend if source else None,
        "served_model": source.served_model if source else None,
        "weights_sha256": source.weights_sha256 if source else None,
        "created_at": now_utc(),
    }


def _missing_prompts(
    config: Config, prompt_ids: Sequence[str], model_id: str, sample_idx: int
) -> tuple[list[str], int]:
    """Prompts (in order, deduplicated) without a stored answer of `model_id`, and the rest."""
    unique_ids = list(dict.fromkeys(prompt_ids))
    stored = load_responses(config.warehouse, unique_ids, [model_id], sample_idx)
    missing = [pid for pid in unique_ids if (pid, model_id) not in stored]
    return missing, len(unique_ids) - len(missing)


def endpoint_cache_tag(
    endpoint: EndpointConfig,
    model_id: str,
    sample_idx: int,
    source: AnswerSource | None = None,
) -> str | None:
    """Separates a served champion's answers per version, backend and weights, and samples
    after the first."""
    parts = []
    if model_id != endpoint.model_id:
        parts.append(f"model_id={model_id}")
    if source is not None and source.backend != "reference":
        parts.append(source.cache_tag())
    if sample_idx:
        parts.append(f"sample={sample_idx}")
    return ";".join(parts) or None


async def answer_with_endpoint_async(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    endpoint: EndpointConfig,
    sandbox_url: str | None,
    writer: RowWriter,
    *,
    model_id: str | None = None,
    sample_idx: int = 0,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    source: AnswerSource | None = None,
) -> ModelAnswerCounts:
    """Answer the prompts without a stored answer through `endpoint`; rows go to `writer`.

    `source`: which backend and weights answer (default: the endpoint as a reference).
    """
    model_id = model_id or endpoint.model_id
    source = source or reference_source(endpoint)
    missing, n_existing = await asyncio.to_thread(
        _missing_prompts, config, prompt_ids, model_id, sample_idx
    )
    counts = ModelAnswerCounts(model_id, n_needed=n_existing + len(missing), n_existing=n_existing)
    if on_progress is not None:
        on_progress(n_existing, counts.n_needed)
    if not missing:
        return counts
    prompts = await asyncio.to_thread(load_prompts, config.warehouse, missing)
    tag = endpoint_cache_tag(endpoint, model_id, sample_idx, source)
    fitted = [
        fit_conversation(prompts[pid].messages, endpoint.max_context_chars) for pid in missing
    ]
    requests = [ChatRequest.for_endpoint(endpoint, f.messages, tag) for f in fitted]
    counts.n_cut = sum(1 for f in fitted if f.n_turns_dropped)

    def store(i: int, result: CallResult) -> None:
        if not result.ok and counts.first_error is None:
            counts.first_error = result.error
        if result.ok:
            row = response_row(
                missing[i],
                model_id,
                sample_idx=sample_idx,
                round_id=round_id,
                text=result.text or "",
                n_tokens=result.completion_tokens,
                finish_reason=result.finish_reason,
                call_id=result.call_id,
                source=source,
            )
            writer.add("responses", row | {"context_turns_cut": fitted[i].n_turns_dropped})

    def progress(n_done: int, n_total: int) -> None:
        if on_progress is not None:
            on_progress(n_existing + n_done, counts.n_needed)

    stats = CallBatchStats()
    await run_calls(
        endpoint,
        requests,
        warehouse=config.warehouse,
        writer=writer,
        sandbox_url=sandbox_url,
        round_id=round_id,
        on_result=store,
        on_progress=progress,
        retry=retry,
        stats=stats,
    )
    counts.add_calls(stats, n_missing=len(missing))
    _log_counts(counts, endpoint.name)
    return counts


def answer_with_endpoint(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    endpoint: EndpointConfig,
    sandbox_url: str | None,
    *,
    model_id: str | None = None,
    sample_idx: int = 0,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
    source: AnswerSource | None = None,
) -> ModelAnswerCounts:
    """Answer through an endpoint (a reference, or a served champion when `model_id` is given)."""

    async def main() -> ModelAnswerCounts:
        async with RowWriter(config.warehouse) as writer:
            return await answer_with_endpoint_async(
                config,
                round_id,
                prompt_ids,
                endpoint,
                sandbox_url,
                writer,
                model_id=model_id,
                sample_idx=sample_idx,
                on_progress=on_progress,
                retry=retry,
                source=source,
            )

    return run_sync(main())


class StudentAnswersFailedError(RuntimeError):
    """Every answer the model under training was asked for failed: the round cannot battle it."""


def require_some_answers(counts: ModelAnswerCounts, through: str) -> None:
    """A reference may leave prompts unanswered; the student answering none of them fails the
    step (a server refusing every request, e.g. a 404 or 400 for a model it does not serve)."""
    n_asked = counts.n_needed - counts.n_existing
    if n_asked and counts.n_failed == n_asked:
        raise StudentAnswersFailedError(
            f"{counts.model_id} answered none of its {n_asked} prompts through {through}; "
            f"first cause: {counts.first_error}. Fix: check that the server serves this "
            "version (a 400 or 404 naming the model means it serves another one) and that "
            "it is reachable; a rerun asks only the unanswered prompts again."
        )


def answer_locally(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    model_id: str,
    model_path: str,
    *,
    sample_idx: int = 0,
    on_progress: ProgressFn | None = None,
) -> ModelAnswerCounts:
    """Generate the missing answers with the local checkpoint, writing each chunk as it ends.

    The checkpoint is loaded once; prompts are sorted by length (short batches pad little),
    then generated in chunks of `8 * batch_size` prompts, each stored when it ends (a crash
    loses at most one chunk). Decoding follows `config.student` (greedy or sampled,
    max_new_tokens, batch_size, device) and stops at the checkpoint's end-of-turn tokens.
    """
    from flywheel.llm.checkpoints import LocalGenerator, weights_sha256

    student = config.student
    missing, n_existing = _missing_prompts(config, prompt_ids, model_id, sample_idx)
    counts = ModelAnswerCounts(model_id, n_needed=n_existing + len(missing), n_existing=n_existing)
    if on_progress is not None:
        on_progress(n_existing, counts.n_needed)
    if not missing:
        return counts
    prompts = load_prompts(config.warehouse, missing)
    generator = LocalGenerator.load(model_path, student.device)
    source = AnswerSource("local", str(model_path), weights_sha256(model_path))
    lengths = {pid: len(generator.encode(prompts[pid].messages)) for pid in missing}
    by_length = sorted(missing, key=lambda pid: lengths[pid], reverse=True)
    writer = RowWriter(config.warehouse)
    chunk_size = 8 * student.batch_size
    for start in range(0, len(by_length), chunk_size):
        chunk = by_length[start : start + chunk_size]
        answers = generator.generate(
            [prompts[pid].messages for pid in chunk],
            max_new_tokens=student.max_new_tokens,
            batch_size=student.batch_size,
            do_sample=student.do_sample,
            temperature=student.temperature,
            seed=student.seed + sample_idx,
        )
        for pid, answer in zip(chunk, answers, strict=True):
            writer.add(
                "responses",
                response_row(
                    pid,
                    model_id,
                    sample_idx=sample_idx,
                    round_id=round_id,
                    text=answer.text,
                    n_tokens=answer.n_tokens,
                    finish_reason=answer.finish_reason,
                    call_id=None,  # generated locally, no endpoint call
                    source=source,
                ),
            )
        writer.flush_now()
        counts.n_generated += len(chunk)
        if on_progress is not None:
            on_progress(n_existing + counts.n_generated, counts.n_needed)
    _log_counts(counts, f"local {model_path}")
    return counts


def answer_served(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    model_id: str,
    model_path: str,
    *,
    sandbox_url: str | None = None,
    sample_idx: int = 0,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
) -> ModelAnswerCounts:
    """Serve the checkpoint (student.backend server or vllm) only when answers are missing,
    answer through it like a reference (call cache, concurrency, retries), then stop it."""
    from flywheel.llm.checkpoints import checkpoint_stops, weights_sha256
    from flywheel.llm.serving import EXIT_GRACE_S, serve_checkpoint, served_endpoint

    student = config.student
    missing, n_existing = _missing_prompts(config, prompt_ids, model_id, sample_idx)
    if not missing:
        counts = ModelAnswerCounts(model_id, n_needed=n_existing, n_existing=n_existing)
        if on_progress is not None:
            on_progress(n_existing, n_existing)
        return counts
    stop_ids, stops = checkpoint_stops(model_path)
    weights = weights_sha256(model_path)
    log_dir = Path(config.training.output_dir) / "serve-logs"
    backend = student.answer_backend
    with serve_checkpoint(student.serve, backend, model_path, model_id, log_dir) as served:
        endpoint = served_endpoint(student, served, stop_ids, stops, sample_idx)
        counts = answer_with_endpoint(
            config,
            round_id,
            prompt_ids,
            endpoint,
            sandbox_url,
            model_id=model_id,
            sample_idx=sample_idx,
            on_progress=on_progress,
            retry=retry,
            source=AnswerSource(backend, served.model, weights),
        )
        served.require_running(
            f"while answering ({counts.n_failed} prompts left unanswered)",
            grace_s=EXIT_GRACE_S if counts.n_failed else 0.0,
        )
    require_some_answers(counts, f"student.backend {backend} ({served.base_url})")
    return counts


def fixed_endpoint_source(answering: EndpointConfig, model_path: str | None) -> AnswerSource:
    """Answers from `student.endpoint`: the model it was asked for, and the weights of the
    checkpoint it must serve when that checkpoint is on this machine."""
    from flywheel.llm.checkpoints import is_checkpoint, weights_sha256

    weights = weights_sha256(model_path) if model_path and is_checkpoint(model_path) else None
    return AnswerSource("endpoint", answering.model, weights)


def answer_as_student(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    model_id: str,
    model_path: str | None,
    *,
    sandbox_url: str | None = None,
    sample_idx: int = 0,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
) -> ModelAnswerCounts:
    """One version of the model under training answers, through `student.backend`."""
    backend = config.student.answer_backend
    if backend == "endpoint":
        from flywheel.llm.serving import fixed_endpoint

        endpoint = fixed_endpoint(config.student, model_id, model_path, sample_idx)
        counts = answer_with_endpoint(
            config,
            round_id,
            prompt_ids,
            endpoint,
            sandbox_url,
            model_id=model_id,
            sample_idx=sample_idx,
            on_progress=on_progress,
            retry=retry,
            source=fixed_endpoint_source(endpoint, model_path),
        )
        require_some_answers(counts, f"student.endpoint ({endpoint.base_url})")
        return counts
    if model_path is None:
        raise ValueError(
            f"{model_id} answers with student.backend {backend}, which needs its checkpoint "
            "directory, but none was given"
        )
    if backend == "local":
        return answer_locally(
            config,
            round_id,
            prompt_ids,
            model_id,
            model_path,
            sample_idx=sample_idx,
            on_progress=on_progress,
        )
    return answer_served(
        config,
        round_id,
        prompt_ids,
        model_id,
        model_path,
        sandbox_url=sandbox_url,
        sample_idx=sample_idx,
        on_progress=on_progress,
        retry=retry,
    )


def _log_counts(counts: ModelAnswerCounts, source: str) -> None:
    logger = step_logger(__name__)
    logger.info(
        "answers of %s via %s: %d needed, %d stored, %d cached, %d new, %d failed (%s), $%.4f; "
        "%d conversations cut to the context budget",
        counts.model_id,
        source,
        counts.n_needed,
        counts.n_existing,
        counts.n_cached,
        counts.n_generated,
        counts.n_failed,
        ", ".join(f"{k}: {v}" for k, v in counts.errors.items()) or "no errors",
        counts.cost_usd,
        counts.n_cut,
    )
    if counts.n_failed:
        logger.warning(
            "%s left %d of %d prompts without an answer; the round goes on without them",
            counts.model_id,
            counts.n_failed,
            counts.n_needed,
        )


class _ProgressSum:
    """Adds the (done, total) of several models into one callback; safe across threads."""

    def __init__(self, on_progress: ProgressFn | None, model_ids: Sequence[str], n_each: int):
        self.on_progress = on_progress
        self.done = dict.fromkeys(model_ids, 0)
        self.total = dict.fromkeys(model_ids, n_each)
        self._lock = threading.Lock()

    def for_model(self, model_id: str) -> ProgressFn:
        def update(n_done: int, n_total: int) -> None:
            with self._lock:
                self.done[model_id], self.total[model_id] = n_done, n_total
                done, total = sum(self.done.values()), sum(self.total.values())
            if self.on_progress is not None:
                self.on_progress(done, total)

        return update


def _champion_job(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    writer: RowWriter,
    *,
    champion_id: str,
    champion_path: str | None,
    sandbox_url: str | None,
    on_progress: ProgressFn,
    retry: RetryPolicy | None,
) -> Coroutine[Any, Any, ModelAnswerCounts]:
    """The champion's answering through `student.backend`: the fixed endpoint shares the
    references' writer; local generation and served versions run in a thread."""
    if config.student.answer_backend == "endpoint":
        from flywheel.llm.serving import fixed_endpoint

        async def through_endpoint() -> ModelAnswerCounts:
            endpoint = await asyncio.to_thread(
                fixed_endpoint, config.student, champion_id, champion_path
            )
            counts = await answer_with_endpoint_async(
                config,
                round_id,
                prompt_ids,
                endpoint,
                sandbox_url,
                writer,
                model_id=champion_id,
                on_progress=on_progress,
                retry=retry,
                source=fixed_endpoint_source(endpoint, champion_path),
            )
            require_some_answers(counts, f"student.endpoint ({endpoint.base_url})")
            return counts

        return through_endpoint()
    return asyncio.to_thread(
        answer_as_student,
        config,
        round_id,
        prompt_ids,
        champion_id,
        champion_path,
        sandbox_url=sandbox_url,
        on_progress=on_progress,
        retry=retry,
    )


def answer_prompts(
    config: Config,
    round_id: int,
    prompt_ids: Sequence[str],
    *,
    champion_id: str,
    champion_path: str | None,
    sandbox_url: str | None,
    purpose: str = "train",
    references: Sequence[EndpointConfig] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    retry: RetryPolicy | None = None,
) -> AnswerReport:
    """The champion and each reference answer `prompt_ids`; already stored answers are reused.

    The champion answers through `config.student.backend` (local generation from
    `champion_path`, a server the flow starts for it, or the fixed `student.endpoint`); references (default `config.references`; pass [] for none) answer through
    their endpoints concurrently with the champion's generation.
    """
    if config.student.answer_backend != "endpoint" and champion_path is None:
        raise ValueError(
            f"the champion answers with student.backend {config.student.answer_backend} but "
            "no champion_path was given; pass the champion's checkpoint directory"
        )
    refs = list(config.references if references is None else references)
    model_ids = [champion_id, *(r.model_id for r in refs)]
    progress = _ProgressSum(on_progress, model_ids, len(set(prompt_ids)))
    report = AnswerReport(round_id, purpose)

    async def main() -> list[ModelAnswerCounts]:
        writer = RowWriter(config.warehouse)
        jobs = [
            answer_with_endpoint_async(
                config,
                round_id,
                prompt_ids,
                ref,
                sandbox_url,
                writer,
                on_progress=progress.for_model(ref.model_id),
                retry=retry,
            )
            for ref in refs
        ]
        champion_job = _champion_job(
            config,
            round_id,
            prompt_ids,
            writer,
            champion_id=champion_id,
            champion_path=champion_path,
            sandbox_url=sandbox_url,
            on_progress=progress.for_model(champion_id),
            retry=retry,
        )
        async with writer, asyncio.TaskGroup() as group:
            tasks = [group.create_task(job) for job in (champion_job, *jobs)]
        return [task.result() for task in tasks]

    for counts in run_sync(main()):
        report.by_model[counts.model_id] = counts
    step_logger(__name__).info(report.summary())
    return report
