"""Implicit feedback: the classifier reads each user's next turn after a logged answer.

`classify_logged_feedback(config)` (`flywheel logs classify`, and after an ingest when
`logs.classify` is on):

1. plan     every (assistant turn, the user's next turn) of the stored logged conversations
            that the classifier version has not read yet: no implicit feedback row of it, no
            `feedback_reads` row (`warehouse/queries/classify_pairs.sql`), as keys; each batch
            of PAIRS_PER_BATCH reads its conversations' turns when it comes (memory holds one
            batch's turns, not every pair's).
2. ask      one request per pair to the classifier endpoint (`logs.classifier`, else the
            judge's) in the versioned prompt (`evaluators/feedback_prompts.py`; the oldest turns
            cut to the endpoint's `max_context_chars`), through `llm/calls.run_calls`: cached by
            call id and stored in `llm_calls` as it arrives, with the endpoint's concurrency and
            retries. Identical requests (the same answer and next turn logged in two records)
            are sent once.
3. read     each reply by `evaluators/feedback_classifier.py`, never guessed: an unreadable
            reply is counted as unparsed; a label whose quote is not in the user's turn is
            dropped and counted; none (no feedback) is counted.
4. store    each label as a `feedback` row (source implicit, kind classified, label positive or
            negative, category, quote, confidence, classifier_version, call_id), in the
            transaction of its call's `llm_calls` row. Its id is a hash of (conversation, turn,
            implicit, version), so a row is written once. A pair read without a label (none,
            unparsed, quote not found) is a `feedback_reads` row with its outcome and call.

A rerun plans nothing it read: labelled pairs and pairs read without a label are left out. A
killed run resumes: calls answered before are in the cache. A call that failed after its
retries writes nothing and is asked again next time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.config import Config, EndpointConfig
from flywheel.evaluators.feedback_classifier import (
    FeedbackReading,
    label_checked,
    parse_classifier_reply,
    quote_not_found,
)
from flywheel.evaluators.feedback_prompts import fit_classifier_messages
from flywheel.llm.calls import CallBatchStats, run_calls, run_sync
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query
from flywheel.warehouse.writer import RowWriter

PAIRS_PER_BATCH = 2000  # pairs asked and stored per `run_calls` batch
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class FeedbackPair:
    """One assistant turn of a logged conversation and the user's next turn."""

    conversation_id: str
    turn_index: int  # the assistant turn's
    turns: list[dict[str, str]]  # the conversation up to and including the answer
    user_turn: str


@dataclass
class ClassifyReport:
    """What one run of the classifier did: n_pairs = n_labelled + n_no_feedback + n_unparsed +
    n_quote_not_found + n_failed."""

    classifier_version: str
    endpoint: str
    n_pairs: int = 0  # pairs this version had not read, read now
    n_labelled: int = 0  # feedback rows written now
    by_category: dict[str, int] = field(default_factory=dict)  # of those
    n_no_feedback: int = 0  # the classifier found none
    n_unparsed: int = 0  # no readable category, quote and confidence in the reply
    n_quote_not_found: int = 0  # the quote is not in the user's turn: label dropped
    n_failed: int = 0  # the call failed after its retries (asked again next run)
    n_cached: int = 0  # answered from the call cache
    n_sent: int = 0  # calls sent now
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def count(self, reading: FeedbackReading) -> None:
        """Count one pair's reading (after the quote check)."""
        outcome = outcome_of(reading)
        if outcome == "unparsed":
            self.n_unparsed += 1
        elif outcome == "quote_not_found":
            self.n_quote_not_found += 1
        elif outcome == "none":
            self.n_no_feedback += 1
        else:
            self.n_labelled += 1
            self.by_category[reading.category] = self.by_category.get(reading.category, 0) + 1

    def summary(self) -> str:
        categories = ", ".join(f"{n} {c}" for c, n in sorted(self.by_category.items())) or "-"
        text = (
            f"implicit feedback ({self.classifier_version} on {self.endpoint}): {self.n_pairs:,} "
            f"pairs read, {self.n_labelled:,} labelled ({categories}), {self.n_no_feedback:,} "
            f"without feedback, {self.n_unparsed:,} unparsed, {self.n_quote_not_found:,} "
            f"quotes not found, {self.n_failed:,} failed calls; {self.n_sent:,} calls sent, "
            f"{self.n_cached:,} from the call cache, {self.wall_s:.1f} s"
        )
        if self.errors:
            text += " (failures: " + ", ".join(f"{k}: {v}" for k, v in self.errors.items()) + ")"
        return text


def classifier_endpoint(config: Config) -> EndpointConfig:
    """The endpoint that classifies: `logs.classifier`, else the judge's."""
    return config.logs.classifier or config.judge


PairKey = tuple[str, int]  # (conversation_id, the assistant turn's turn_index)


def pending_keys(config: Config, version: str) -> list[PairKey]:
    """Every (answer, next user turn) without an implicit label of `version` (step 1), as
    keys: their turns are read a batch at a time (`pairs_with_turns`)."""
    with connect_warehouse(config.warehouse) as con:
        return con.execute(read_query("classify_pairs"), [version]).fetchall()


def pairs_with_turns(config: Config, keys: Sequence[PairKey]) -> list[FeedbackPair]:
    """The pairs of `keys`, each with its conversation's turns up to the answer and the user's
    next turn, read from the warehouse for these keys only (a conversation of n answers is
    read once, not n times)."""
    conversation_ids = sorted({conversation_id for conversation_id, _ in keys})
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("classify_pair_turns"), [conversation_ids]).fetchall()
    turns_of: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for conversation_id, turn_index, role, content in rows:
        turn = {"role": role, "content": content}
        turns_of.setdefault(conversation_id, []).append((turn_index, turn))
    pairs = []
    for conversation_id, answer_index in keys:
        turns = [t for i, t in turns_of[conversation_id] if i <= answer_index]
        user_turn = next(t for i, t in turns_of[conversation_id] if i == answer_index + 1)
        pairs.append(FeedbackPair(conversation_id, answer_index, turns, user_turn["content"]))
    return pairs


def outcome_of(reading: FeedbackReading) -> str | None:
    """What a reading without a label was (a `feedback_reads` outcome); None for a label."""
    if not reading.parse_ok:
        return "unparsed"
    if quote_not_found(reading):
        return "quote_not_found"
    return "none" if reading.category is None else None


def read_row(pair: FeedbackPair, outcome: str, version: str, call_id: str) -> dict[str, Any]:
    """The `feedback_reads` row of a pair read without a label."""
    return {
        "conversation_id": pair.conversation_id,
        "turn_index": pair.turn_index,
        "classifier_version": version,
        "outcome": outcome,
        "call_id": call_id,
        "created_at": now_utc(),
    }


def feedback_row(
    pair: FeedbackPair, reading: FeedbackReading, version: str, call_id: str
) -> dict[str, Any]:
    """The `feedback` row of one label (step 4)."""
    return {
        "feedback_id": content_id(
            [pair.conversation_id, pair.turn_index, "implicit", version, "classified"]
        ),
        "conversation_id": pair.conversation_id,
        "turn_index": pair.turn_index,
        "source": "implicit",
        "kind": "classified",
        "label": reading.label,
        "category": reading.category,
        "quote": reading.quote,
        "confidence": reading.confidence,
        "classifier_version": version,
        "call_id": call_id,
        "created_at": now_utc(),
    }


async def _classify_batch(
    endpoint: EndpointConfig,
    pairs: Sequence[FeedbackPair],
    version: str,
    config: Config,
    writer: RowWriter,
    report: ClassifyReport,
) -> None:
    """Steps 2-4 for one batch of pairs."""
    requests = [
        ChatRequest.for_endpoint(
            endpoint,
            fit_classifier_messages(p.turns, p.user_turn, version, endpoint.max_context_chars)[0],
        )
        for p in pairs
    ]

    def store(i: int, result: CallResult) -> None:
        if not result.ok:
            return  # counted by the batch's stats
        report.n_cached += int(result.cached)
        reading = label_checked(parse_classifier_reply(result.text or ""), pairs[i].user_turn)
        report.count(reading)
        outcome = outcome_of(reading)
        if outcome is None:
            writer.add("feedback", feedback_row(pairs[i], reading, version, result.call_id))
        else:
            writer.add("feedback_reads", read_row(pairs[i], outcome, version, result.call_id))

    stats = CallBatchStats()
    await run_calls(
        endpoint,
        requests,
        warehouse=config.warehouse,
        writer=writer,
        on_result=store,
        stats=stats,
    )
    report.n_failed += stats.n_failed
    report.n_sent += stats.n_sent
    for cause, n in stats.errors.items():
        report.errors[cause] = report.errors.get(cause, 0) + n


def classify_logged_feedback(
    config: Config,
    endpoint: EndpointConfig | None = None,
    on_progress: ProgressFn | None = None,
) -> ClassifyReport:
    """Classify every pair not labelled by `logs.classifier_prompt_version` yet (module doc);
    `endpoint`: the classifier, resolved (default `classifier_endpoint(config)`)."""
    started = time.perf_counter()
    endpoint = endpoint or classifier_endpoint(config)
    version = config.logs.classifier_prompt_version
    report = ClassifyReport(classifier_version=version, endpoint=endpoint.name)
    keys = pending_keys(config, version)
    report.n_pairs = len(keys)

    async def main() -> None:
        async with RowWriter(config.warehouse) as writer:
            for start in range(0, len(keys), PAIRS_PER_BATCH):
                batch = pairs_with_turns(config, keys[start : start + PAIRS_PER_BATCH])
                await _classify_batch(endpoint, batch, version, config, writer, report)
                if on_progress is not None:
                    on_progress(start + len(batch), len(keys))

    if keys:
        run_sync(main())
    report.wall_s = time.perf_counter() - started
    return report
