"""A log file's records into batches of warehouse rows: parsed, made private, nothing written.

`file_batches(settings, plan)` reads the complete records after `plan.start` (`pool.logs_files`)
in batches of `settings.batch_size` and builds each one's rows: conversations, turns, explicit
feedback, feedback records on their own (joined to their conversation by the writer), the
opening prompt of each conversation, bad records with their line, redaction counts. It needs
no warehouse, so it runs in this process or in a worker process (`pool.logs_worker`) alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from flywheel.errors import InputError
from flywheel.pool.logs_files import LogLine, ReadPlan, read_lines
from flywheel.pool.logs_formats import Conversation, DetachedFeedback, parse_log_record
from flywheel.pool.logs_privacy import RedactionCounts, hash_user_id, redact_text
from flywheel.pool.normalise import clean_content, prompt_id_of
from flywheel.pool.records import RecordProblem
from flywheel.warehouse.ids import content_id


@dataclass(frozen=True)
class BuildSettings:
    """What building a batch needs of the config (`logs.*`, `prompts.*`) and the ingest."""

    source: str
    redact: bool
    add_prompts: bool
    max_chars: int
    batch_size: int
    salt: str | None
    salt_env: str  # named in the error when a user id comes without a salt


@dataclass
class LogBatch:
    """One batch's rows, built from its parsed records."""

    conversations: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    detached: list[tuple[int, DetachedFeedback]] = field(default_factory=list)
    # (conversation id, prompt id, the turns before the first answer as stored) per
    # conversation that has an opening prompt: what the pool is offered
    openings: list[tuple[str, str, list[dict[str, str]]]] = field(default_factory=list)
    counts: RedactionCounts = field(default_factory=RedactionCounts)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, reason), in order
    n_records: int = 0
    n_malformed: int = 0
    file_sha256: str = ""  # the hash of the file up to the end of the batch's last record
    bytes_read: int = 0  # the file offset just after the batch's last record
    lines_read: int = 0  # the batch's last record's line


def file_batches(settings: BuildSettings, plan: ReadPlan, where: str) -> Iterator[LogBatch]:
    """The file's batches, built; each knows the hash of the file up to its last record (read
    before the next batch moves the hash on). `where` names the file in errors."""
    builder = BatchBuilder(settings, where)
    lines = read_lines(plan)
    while chunk := list(islice(lines, settings.batch_size)):
        file_sha256 = plan.digest.hexdigest()
        batch = builder.build(chunk)
        batch.file_sha256 = file_sha256
        batch.bytes_read, batch.lines_read = chunk[-1].end_offset, chunk[-1].line_no
        del chunk  # the parsed JSON is not kept while the batch waits for the writer
        yield batch


class BatchBuilder:
    """Rows of parsed records, made private before anything else sees them."""

    def __init__(self, settings: BuildSettings, where: str) -> None:
        self.settings = settings
        self.where = where

    def private(self, text: str | None, counts: RedactionCounts) -> str | None:
        if text is None or not self.settings.redact:
            return text
        return redact_text(text, counts)

    def user_hash(self, conversation: Conversation, line_no: int) -> str | None:
        if conversation.user_id is None:
            return None
        if self.settings.salt is None:
            raise InputError(
                f"log file {self.where!r} line {line_no} has a user id, and no salt to hash it "
                f"with is set. Fix: export {self.settings.salt_env}=<a long random secret> (or "
                "set logs.user_salt)."
            )
        return hash_user_id(conversation.user_id, self.settings.salt)

    def build(self, chunk: list[LogLine]) -> LogBatch:
        """The batch's rows (parsed, made private); its bad records named in `problems`."""
        batch = LogBatch()
        for line in chunk:
            batch.n_records += 1
            parsed = (
                line.record.reason
                if isinstance(line.record, RecordProblem)
                else parse_log_record(line.record)
            )
            if isinstance(parsed, str):
                batch.n_malformed += 1
                batch.problems.append((line.line_no, parsed))
            elif isinstance(parsed, DetachedFeedback):
                batch.detached.append((line.line_no, parsed))
            else:
                for conversation in parsed:
                    self.add_conversation(batch, conversation, line.line_no)
        return batch

    def add_conversation(self, batch: LogBatch, conversation: Conversation, line_no: int) -> None:
        turns = [
            {"role": t.role, "content": self.private(t.content, batch.counts)}
            for t in conversation.turns
        ]
        opening = turns[: _first_answer(turns)]
        prompt_id = self.opening_prompt_id(opening)
        batch.conversations.append(
            {
                "conversation_id": conversation.conversation_id,
                "source": self.settings.source,
                "log_format": conversation.log_format,
                "external_id": conversation.external_id,
                "model": conversation.model,
                "user_hash": self.user_hash(conversation, line_no),
                "started_at": conversation.started_at,
                "n_turns": len(turns),
                "prompt_id": prompt_id,
                "line_no": line_no,
            }
        )
        if prompt_id is not None:
            batch.openings.append((conversation.conversation_id, prompt_id, opening))
        batch.turns.extend(
            {"conversation_id": conversation.conversation_id, "turn_index": i, **turn}
            for i, turn in enumerate(turns)
        )
        for feedback in conversation.feedback:
            batch.feedback.append(self.feedback_row(conversation.conversation_id, feedback, batch))
            batch.feedback[-1]["line_no"] = line_no

    def opening_prompt_id(self, opening: list[dict[str, Any]]) -> str | None:
        """The pool id of the turns before the first answer (`opening`), as the pool's ingest
        computes it for a valid prompt; None for what cannot be one (a tool turn, empty, too
        long). A prompt the pool still refuses loses its id after the pool's ingest."""
        if not self.settings.add_prompts:
            return None
        cleaned = [{"role": t["role"], "content": clean_content(t["content"])} for t in opening]
        roles = [t["role"] for t in cleaned]
        if (
            not roles
            or roles[-1] != "user"
            or "tool" in roles
            or not all(t["content"] for t in cleaned)
        ):
            return None
        if sum(len(t["content"]) for t in cleaned) > self.settings.max_chars:
            return None
        return prompt_id_of(cleaned)

    def feedback_row(self, conversation_id: str, feedback: Any, batch: LogBatch) -> dict[str, Any]:
        identity = feedback.origin_id or [
            feedback.kind,
            feedback.value,
            feedback.score,
            feedback.comment,
            feedback.correction,
        ]
        return {
            "feedback_id": content_id(
                [conversation_id, feedback.turn_index, "explicit", feedback.key, identity]
            ),
            "conversation_id": conversation_id,
            "turn_index": feedback.turn_index,
            "source": "explicit",
            "kind": feedback.kind,
            "label": feedback.label,
            "category": "correction" if feedback.correction else None,
            "score": feedback.score,
            "value": feedback.value,
            "comment": self.private(feedback.comment, batch.counts),
            "correction": self.private(feedback.correction, batch.counts),
            "feedback_key": feedback.key,
        }


def _first_answer(turns: list[dict[str, Any]]) -> int:
    return next(i for i, t in enumerate(turns) if t["role"] == "assistant")
