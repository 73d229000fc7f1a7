"""A simulated day written as the logs people have, and its ground truth apart.

Conversation i of a day goes to format i mod 5, one file per format in the output folder:

- `day-NNN.openai-log.jsonl`: one OpenAI chat-completion record per answer (the history in
  `request.messages`, the answer in `response.choices`), the thumb in `metadata.feedback`;
- `day-NNN.langsmith.jsonl`: one LangSmith run per answer, the thumb as `feedback`
  (`key` user_thumb, `score` 1 or 0), and where the user's next turn corrects the answer, a
  `correction` feedback too: the answer as the user wanted it (its final answer replaced by
  the expected one, the rest of its text kept), as LangSmith's annotation queues record an
  edited output;
- `day-NNN.langfuse.jsonl`: one Langfuse trace per answer, the thumb as a BOOLEAN score;
- `day-NNN.arena.jsonl`: the first question answered by the model and by a second model,
  with the user's vote (an honest user votes for the right answer; the flatterer for the
  longer one);
- `day-NNN.messages.jsonl`: the whole conversation in OpenAI `messages`, thumbs as per-turn
  `feedback` (an object with the thumb as `value` and the `correction`, where there is one).

`ground-truth/day-NNN.jsonl` holds one row per answer (its log format, the log's id of the
record whose last answer it is, the turn index, persona, planted, skill, question, expected
answer, committed answer, right or not, thumb, next turn's category and text). It is for
measurement only: `logs.paths` globs such as `DIR/*.jsonl` do not reach the subfolder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flywheel.evaluators.skills import check_answer, replace_final_answer
from flywheel.sandbox.traffic import Answerer, AnswerTruth, SimConversation

FORMATS = ("openai-log", "langsmith", "langfuse", "arena", "messages")
TRUTH_FOLDER = "ground-truth"
SECONDS_PER_ANSWER = 30


@dataclass
class TrafficReport:
    """What a day wrote: files, records per format, answers and feedback in the truth."""

    day: int
    paths: list[Path] = field(default_factory=list)
    truth_path: Path | None = None
    records: dict[str, int] = field(default_factory=dict)
    n_answers: int = 0
    n_thumbs: int = 0
    n_feedback_turns: int = 0

    def summary(self) -> str:
        per_format = ", ".join(f"{n:,} {name}" for name, n in self.records.items())
        return (
            f"sandbox traffic day {self.day}: {per_format} records in {len(self.paths)} files; "
            f"{self.n_answers:,} answers, {self.n_thumbs:,} thumbs, {self.n_feedback_turns:,} "
            f"feedback turns; ground truth (for measurement only) in {self.truth_path}"
        )


def _thumb_score(value: str | None) -> int | None:
    return None if value is None else int(value == "up")


def _at(conversation: SimConversation, k: int) -> str:
    return (conversation.started_at + timedelta(seconds=SECONDS_PER_ANSWER * k)).isoformat() + "Z"


def corrected_answer(conversation: SimConversation, truth: AnswerTruth) -> str | None:
    """The answer as the user wanted it, where the user's next turn is a correction."""
    if truth.next_category != "correction":
        return None
    return replace_final_answer(conversation.turns[truth.turn_index]["content"], truth.expected)


def openai_records(conversation: SimConversation) -> list[tuple[str, AnswerTruth, dict]]:
    out = []
    for k, truth in enumerate(conversation.answers):
        record_id = f"{conversation.key}-a{k}"
        metadata: dict[str, Any] = {"user_id": conversation.user_id}
        if truth.thumb:
            metadata["feedback"] = {"thumb": truth.thumb}
        record = {
            "request": {
                "model": conversation.model,
                "messages": conversation.turns[: truth.turn_index],
            },
            "response": {
                "id": record_id,
                "model": conversation.model,
                "choices": [{"message": conversation.turns[truth.turn_index]}],
            },
            "metadata": metadata,
            "timestamp": _at(conversation, k),
        }
        out.append((record_id, truth, record))
    return out


def langsmith_records(conversation: SimConversation) -> list[tuple[str, AnswerTruth, dict]]:
    out = []
    for k, truth in enumerate(conversation.answers):
        run_id = f"{conversation.key}-a{k}"
        feedback = []
        if truth.thumb:
            feedback.append(
                {"id": f"{run_id}-fb", "key": "user_thumb", "score": _thumb_score(truth.thumb)}
            )
        corrected = corrected_answer(conversation, truth)
        if corrected is not None:
            feedback.append(
                {
                    "id": f"{run_id}-correction",
                    "key": "correction",
                    "correction": {"output": corrected},
                }
            )
        record = {
            "id": run_id,
            "run_type": "llm",
            "inputs": {"messages": conversation.turns[: truth.turn_index]},
            "outputs": {"output": conversation.turns[truth.turn_index]["content"]},
            "start_time": _at(conversation, k),
            "extra": {
                "metadata": {"user_id": conversation.user_id, "ls_model_name": conversation.model}
            },
            "feedback": feedback,
        }
        out.append((run_id, truth, record))
    return out


def langfuse_records(conversation: SimConversation) -> list[tuple[str, AnswerTruth, dict]]:
    out = []
    for k, truth in enumerate(conversation.answers):
        trace_id = f"{conversation.key}-a{k}"
        scores = []
        if truth.thumb:
            scores.append(
                {"name": "thumbs", "value": _thumb_score(truth.thumb), "dataType": "BOOLEAN"}
            )
        record = {
            "id": trace_id,
            "timestamp": _at(conversation, k),
            "userId": conversation.user_id,
            "input": conversation.turns[: truth.turn_index],
            "output": conversation.turns[truth.turn_index],
            "metadata": {"model": conversation.model},
            "scores": scores,
        }
        out.append((trace_id, truth, record))
    return out


def messages_records(conversation: SimConversation) -> list[tuple[str, AnswerTruth, dict]]:
    feedback: dict[int, Any] = {}
    for truth in conversation.answers:
        corrected = corrected_answer(conversation, truth)
        if corrected is not None:
            feedback[truth.turn_index] = {"value": truth.thumb, "correction": corrected}
        elif truth.thumb:
            feedback[truth.turn_index] = truth.thumb
    turns = [
        {**turn, "feedback": feedback[i]} if i in feedback else turn
        for i, turn in enumerate(conversation.turns)
    ]
    record = {
        "id": conversation.key,
        "model": conversation.model,
        "user_id": conversation.user_id,
        "timestamp": _at(conversation, 0),
        "messages": turns,
    }
    return [(conversation.key, truth, record) for truth in conversation.answers]


def arena_record(
    conversation: SimConversation, second_model: str, answer_b: Answerer
) -> tuple[dict, AnswerTruth, str]:
    """The first question answered by both models, and the user's vote."""
    truth = conversation.answers[0]
    question = conversation.turns[: truth.turn_index]
    reply_a = conversation.turns[truth.turn_index]["content"]
    reply_b = answer_b(question[:-1], truth.question)
    right_a, right_b = truth.correct, check_answer(truth.question, reply_b)
    if not conversation.persona.honest:
        winner = "model_a" if len(reply_a) >= len(reply_b) else "model_b"
    elif right_a == right_b:
        winner = "tie" if right_a else "tie (bothbad)"
    else:
        winner = "model_a" if right_a else "model_b"
    record = {
        "question_id": conversation.key,
        "model_a": conversation.model,
        "model_b": second_model,
        "winner": winner,
        "judge": conversation.user_id,
        "tstamp": conversation.started_at.timestamp(),
        "conversation_a": [*question, {"role": "assistant", "content": reply_a}],
        "conversation_b": [*question, {"role": "assistant", "content": reply_b}],
    }
    return record, truth, winner


def truth_row(
    conversation: SimConversation, log_format: str, external_id: str, truth: AnswerTruth
) -> dict[str, Any]:
    next_index = truth.turn_index + 1
    next_turn = (
        conversation.turns[next_index]["content"] if next_index < len(conversation.turns) else None
    )
    return {
        "log_format": log_format,
        "external_id": external_id,
        "conversation_key": conversation.key,
        "persona": conversation.persona.name,
        "planted": not conversation.persona.honest,
        "user_id": conversation.user_id,
        **asdict(truth),
        "next_turn": next_turn if truth.next_category else None,
    }


def write_day(
    conversations: list[SimConversation],
    day: int,
    out_dir: Path,
    second_model: str,
    answer_b: Answerer,
) -> TrafficReport:
    """Each conversation in its format's file, the truth apart (module doc)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRUTH_FOLDER).mkdir(exist_ok=True)
    report = TrafficReport(day=day, truth_path=out_dir / TRUTH_FOLDER / f"day-{day:03d}.jsonl")
    lines: dict[str, list[str]] = {name: [] for name in FORMATS}
    truth_lines: list[str] = []
    writers = {
        "openai-log": openai_records,
        "langsmith": langsmith_records,
        "langfuse": langfuse_records,
        "messages": messages_records,
    }
    for index, conversation in enumerate(conversations):
        log_format = FORMATS[index % len(FORMATS)]
        if log_format == "arena":
            record, truth, winner = arena_record(conversation, second_model, answer_b)
            lines["arena"].append(json.dumps(record))
            row = truth_row(conversation, "arena", f"{conversation.key}:a", truth)
            truth_lines.append(json.dumps({**row, "vote": winner}, default=str))
            continue
        written = writers[log_format](conversation)
        for external_id, truth, _record in written:
            truth_lines.append(
                json.dumps(truth_row(conversation, log_format, external_id, truth), default=str)
            )
        unique = {id(r): r for _, _, r in written}
        lines[log_format].extend(json.dumps(r) for r in unique.values())
    for name, records in lines.items():
        path = out_dir / f"day-{day:03d}.{name}.jsonl"
        path.write_text("".join(r + "\n" for r in records), encoding="utf-8")
        report.paths.append(path)
        report.records[name] = len(records)
    report.truth_path.write_text("".join(t + "\n" for t in truth_lines), encoding="utf-8")
    answers = [json.loads(t) for t in truth_lines]
    report.n_answers = len(answers)
    report.n_thumbs = sum(1 for a in answers if a["thumb"])
    report.n_feedback_turns = sum(1 for a in answers if a["next_category"])
    return report
