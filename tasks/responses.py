"""The answers of step 2 as rows: one `responses` row per answer, and what answering counted.

A `responses` row is keyed by hash(prompt_id, model_id, sample_idx) (`response_id_for`) and
records which backend and weights answered (`AnswerSource`). `pending_prompts` says which of
the prompts a model was asked still lack an answer: an answer already stored is reused, never
generated again. `ModelAnswerCounts` is what one model's answering did, logged by `log_counts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.config import Config, EndpointConfig
from flywheel.llm.calls import CallBatchStats, ProgressFn
from flywheel.logs import step_logger
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.reads import load_responses
from flywheel.warehouse.store import now_utc


@dataclass(frozen=True)
class Asked:
    """One model asked to answer prompts of a round (sample `sample_idx` of each)."""

    round_id: int
    prompt_ids: Sequence[str]
    model_id: str
    sample_idx: int = 0


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


def pending_prompts(
    config: Config, asked: Asked, on_progress: ProgressFn | None = None
) -> tuple[list[str], ModelAnswerCounts]:
    """The asked prompts (in order, deduplicated) without a stored answer of the model, and
    the counts started with those stored; `on_progress` hears of the stored ones."""
    unique_ids = list(dict.fromkeys(asked.prompt_ids))
    stored = load_responses(config.warehouse, unique_ids, [asked.model_id], asked.sample_idx)
    missing = [pid for pid in unique_ids if (pid, asked.model_id) not in stored]
    n_existing = len(unique_ids) - len(missing)
    counts = ModelAnswerCounts(asked.model_id, n_needed=len(unique_ids), n_existing=n_existing)
    if on_progress is not None:
        on_progress(n_existing, counts.n_needed)
    return missing, counts


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


def log_counts(counts: ModelAnswerCounts, source: str) -> None:
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
