"""Step 2 of the round: the champion and every reference answer the round's prompts.

One row per answer in `responses`, keyed by hash(prompt_id, model_id, sample_idx): an answer
already stored is reused, never generated again. The champion answers locally (Hugging Face
`generate`, batched with left padding, on GPU when one is present) or through
`config.student.endpoint`; each reference answers through its endpoint with the call cache of
`llm/calls.py`. A reference whose calls fail after their retries leaves those prompts
without an answer: the failures are counted, stored in `llm_calls` with their cause, and the
round goes on with the others.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
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
            {k: v for k, v in vars(c).items() if k != "errors"} | {"errors": dict(c.errors)}
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


def endpoint_cache_tag(endpoint: EndpointConfig, model_id: str, sample_idx: int) -> str | None:
    """Separates a served champion's answers per version, and samples after the first."""
    parts = []
    if model_id != endpoint.model_id:
        parts.append(f"model_id={model_id}")
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
) -> ModelAnswerCounts:
    """Answer the prompts without a stored answer through `endpoint`; rows go to `writer`."""
    model_id = model_id or endpoint.model_id
    missing, n_existing = await asyncio.to_thread(
        _missing_prompts, config, prompt_ids, model_id, sample_idx
    )
    counts = ModelAnswerCounts(model_id, n_needed=n_existing + len(missing), n_existing=n_existing)
    if on_progress is not None:
        on_progress(n_existing, counts.n_needed)
    if not missing:
        return counts
    prompts = await asyncio.to_thread(load_prompts, config.warehouse, missing)
    tag = endpoint_cache_tag(endpoint, model_id, sample_idx)
    fitted = [
        fit_conversation(prompts[pid].messages, endpoint.max_context_chars) for pid in missing
    ]
    requests = [ChatRequest.for_endpoint(endpoint, f.messages, tag) for f in fitted]
    counts.n_cut = sum(1 for f in fitted if f.n_turns_dropped)

    def store(i: int, result: CallResult) -> None:
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
            )

    return run_sync(main())


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

    Decoding follows `config.student` (greedy or sampled, max_new_tokens, batch_size, device).
    Chunks of `8 * batch_size` prompts bound what a crash can lose.
    """
    from flywheel.llm.checkpoints import generate_answers

    student = config.student
    missing, n_existing = _missing_prompts(config, prompt_ids, model_id, sample_idx)
    counts = ModelAnswerCounts(model_id, n_needed=n_existing + len(missing), n_existing=n_existing)
    if on_progress is not None:
        on_progress(n_existing, counts.n_needed)
    if not missing:
        return counts
    prompts = load_prompts(config.warehouse, missing)
    writer = RowWriter(config.warehouse)
    chunk_size = 8 * student.batch_size
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start : start + chunk_size]
        answers = generate_answers(
            model_path,
            [prompts[pid].messages for pid in chunk],
            max_new_tokens=student.max_new_tokens,
            batch_size=student.batch_size,
            do_sample=student.do_sample,
            temperature=student.temperature,
            seed=student.seed + sample_idx,
            device=student.device,
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
                ),
            )
        writer.flush_now()
        counts.n_generated += len(chunk)
        if on_progress is not None:
            on_progress(n_existing + counts.n_generated, counts.n_needed)
    _log_counts(counts, f"local {model_path}")
    return counts


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
    """The champion's answering: through `config.student.endpoint` when one is set, else
    local generation from `champion_path` in a thread."""
    if config.student.endpoint is not None:
        return answer_with_endpoint_async(
            config,
            round_id,
            prompt_ids,
            config.student.endpoint,
            sandbox_url,
            writer,
            model_id=champion_id,
            on_progress=on_progress,
            retry=retry,
        )
    return asyncio.to_thread(
        answer_locally,
        config,
        round_id,
        prompt_ids,
        champion_id,
        champion_path,
        on_progress=on_progress,
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

    The champion generates locally from `champion_path`, or through `config.student.endpoint`
    when one is set; references (default `config.references`; pass [] for none) answer through
    their endpoints concurrently with the champion's generation.
    """
    if config.student.endpoint is None and champion_path is None:
        raise ValueError(
            "the champion answers locally (student.endpoint is not set) but no champion_path "
            "was given; pass the champion's checkpoint directory"
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
