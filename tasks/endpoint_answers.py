"""Answers through an OpenAI-compatible endpoint: a reference, or a served student version.

The prompts without a stored answer are sent through the call cache of `llm/calls.py`
(cached by call id, bounded concurrency, retries); each conversation is cut to the endpoint's
`max_context_chars` first (`evaluators/context.py`). Each answer's `responses` row joins the
transaction of its call's `llm_calls` row. A call that fails after its retries leaves its
prompt without an answer: counted, its cause stored in `llm_calls`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from flywheel.config import Config, EndpointConfig
from flywheel.evaluators.context import FittedConversation, fit_conversation
from flywheel.llm.calls import CallBatchStats, ProgressFn, run_calls, run_sync
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.tasks.responses import (
    AnswerSource,
    Asked,
    ModelAnswerCounts,
    log_counts,
    pending_prompts,
    reference_source,
    response_row,
)
from flywheel.warehouse.reads import load_prompts
from flywheel.warehouse.writer import RowWriter


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


async def answer_through_endpoint(
    config: Config,
    asked: Asked,
    endpoint: EndpointConfig,
    writer: RowWriter,
    *,
    source: AnswerSource | None = None,
    on_progress: ProgressFn | None = None,
) -> ModelAnswerCounts:
    """Answer the asked prompts without a stored answer through `endpoint`; rows go to
    `writer`. `source`: which backend and weights answer (default: the endpoint as a
    reference)."""
    source = source or reference_source(endpoint)
    missing, counts = await asyncio.to_thread(pending_prompts, config, asked, on_progress)
    if not missing:
        return counts
    prompts = await asyncio.to_thread(load_prompts, config.warehouse, missing)
    fitted = [
        fit_conversation(prompts[pid].messages, endpoint.max_context_chars) for pid in missing
    ]
    tag = endpoint_cache_tag(endpoint, asked.model_id, asked.sample_idx, source)
    requests = [ChatRequest.for_endpoint(endpoint, f.messages, tag) for f in fitted]
    counts.n_cut = sum(1 for f in fitted if f.n_turns_dropped)

    def progress(n_done: int, n_total: int) -> None:
        if on_progress is not None:
            on_progress(counts.n_existing + n_done, counts.n_needed)

    stats = CallBatchStats()
    await run_calls(
        endpoint,
        requests,
        warehouse=config.warehouse,
        writer=writer,
        round_id=asked.round_id,
        on_result=_answer_storer(asked, missing, fitted, source, writer, counts),
        on_progress=progress,
        stats=stats,
    )
    counts.add_calls(stats, n_missing=len(missing))
    log_counts(counts, endpoint.name)
    return counts


def _answer_storer(
    asked: Asked,
    prompt_ids: list[str],
    fitted: list[FittedConversation],
    source: AnswerSource,
    writer: RowWriter,
    counts: ModelAnswerCounts,
) -> Callable[[int, CallResult], None]:
    """`on_result` of the calls: request i's answer becomes the `responses` row of prompt i;
    the first failure's cause is kept for the error a student that answered nothing raises."""

    def store(i: int, result: CallResult) -> None:
        if not result.ok and counts.first_error is None:
            counts.first_error = result.error
        if result.ok:
            row = response_row(
                prompt_ids[i],
                asked.model_id,
                sample_idx=asked.sample_idx,
                round_id=asked.round_id,
                text=result.text or "",
                n_tokens=result.completion_tokens,
                finish_reason=result.finish_reason,
                call_id=result.call_id,
                source=source,
            )
            writer.add("responses", row | {"context_turns_cut": fitted[i].n_turns_dropped})

    return store


def answer_through_endpoint_now(
    config: Config,
    asked: Asked,
    endpoint: EndpointConfig,
    *,
    source: AnswerSource | None = None,
    on_progress: ProgressFn | None = None,
) -> ModelAnswerCounts:
    """`answer_through_endpoint` from sync code, with a row writer of its own."""

    async def main() -> ModelAnswerCounts:
        async with RowWriter(config.warehouse) as writer:
            return await answer_through_endpoint(
                config, asked, endpoint, writer, source=source, on_progress=on_progress
            )

    return run_sync(main())
