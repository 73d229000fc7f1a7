"""Production log formats: which one a record is in, and the conversations and feedback it holds.

One record (a JSON object, one line of a log file) in any of these formats:

- `openai-log`: an OpenAI chat-completion log, one record per request, as NVIDIA's Data
  Flywheel Blueprint and OpenAI's stored completions keep them: `request.messages`,
  `response.choices[0].message` (the answer), `response.model` (or `request.model`),
  `metadata` (`user_id`, `user` or `end_user`; `request.user` too), `timestamp` (else
  `response.created`); feedback in an optional `feedback` (object or array) or
  `metadata.feedback`.
- `langsmith`: a LangSmith run export: `id` (or `run_id`), `inputs.messages` (or `inputs.input`),
  `outputs` (`output`, `messages`, `generations`, `choices`), `start_time`, `extra.metadata`
  (`user_id`, `ls_model_name`), `feedback`: an array of {`key`, `score`, `value`, `comment`,
  `correction`}.
- `langsmith-feedback`: one LangSmith feedback record on its own: `run_id`, `key`, `score`,
  `value`, `comment`, `correction` (the run must have been ingested before, or earlier in the
  same file).
- `langfuse`: a Langfuse trace: `id`, `input`, `output`, `userId`, `timestamp`, `metadata.model`,
  `scores`: an array of {`name`, `value`, `dataType`, `comment`, `stringValue`}.
- `langfuse-score`: one Langfuse score on its own: `traceId`, `name`, `value`, `dataType`, `comment`.
- `arena`: a Chatbot Arena record: `model_a`, `model_b`, `winner` (model_a | model_b | tie |
  tie (bothbad)), `conversation_a`, `conversation_b`, `judge` (the voter), `tstamp`,
  `question_id`. It holds two conversations, each with the vote as feedback on its last answer.
- `messages`: OpenAI `messages` or ShareGPT `conversations` with a per-turn `feedback` field on
  assistant turns (a thumb word, boolean, number, or {`rating`|`score`|`thumb`|`value`,
  `comment`, `correction`}), and `id`, `model`, `user_id`, `timestamp` at the top.

A record in none of these gets the nearest format named with the fields it lacks. What a
thumb, score or vote says is read by `pool.logs_feedback`.

Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from flywheel.pool.logs_feedback import Feedback, Label, make_feedback, text_or_none
from flywheel.pool.logs_turns import Turn, assistant_indexes, read_time, read_turn, read_turns
from flywheel.warehouse.ids import content_id, id_of_json

FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "openai-log": ("request", "response", "metadata"),
    "langsmith": ("id", "inputs", "outputs", "run_type", "feedback", "start_time"),
    "langsmith-feedback": ("run_id", "key", "score", "value", "comment", "correction"),
    "langfuse": ("id", "input", "output", "scores", "userId", "timestamp"),
    "langfuse-score": ("traceId", "name", "value", "dataType", "comment"),
    "arena": ("model_a", "model_b", "winner", "conversation_a", "conversation_b"),
    "messages": ("messages", "conversations", "feedback", "user_id", "model"),
}
FORMAT_NEEDS: dict[str, str] = {
    "openai-log": "`request.messages` and `response.choices`",
    "langsmith": "`id`, `inputs` and `outputs`",
    "langsmith-feedback": "`run_id` and `key`",
    "langfuse": "`id`, `input` and `output`",
    "langfuse-score": "`traceId`, `name` and `value`",
    "arena": "`model_a`, `model_b`, `winner`, `conversation_a` and `conversation_b`",
    "messages": "`messages` (or `conversations`) with user and assistant turns",
}
ARENA_WINNERS: dict[str, tuple[Label, Label]] = {
    "model_a": ("positive", "negative"),
    "model_b": ("negative", "positive"),
    "tie": ("neutral", "neutral"),
    "tie (bothbad)": ("negative", "negative"),
}


@dataclass(frozen=True)
class Conversation:
    """One logged conversation: its turns, the model that answered, who asked, when, and the
    explicit feedback on its assistant turns (each Feedback's turn_index resolved)."""

    conversation_id: str
    log_format: str
    turns: tuple[Turn, ...]
    model: str | None
    user_id: str | None  # as logged; stored only as a salted hash
    started_at: datetime | None
    feedback: tuple[Feedback, ...]
    external_id: str | None = None


@dataclass(frozen=True)
class DetachedFeedback:
    """A feedback record on its own, for a conversation logged elsewhere (its id)."""

    log_format: str
    conversation_id: str
    external_id: str
    feedback: Feedback


Parsed = list[Conversation] | DetachedFeedback | str


def conversation_id_of(family: str, external_id: str) -> str:
    """A logged conversation's key: sha256 of its format family and the log's own id, i.e.
    `content_id(["log", family, external_id])`, its canonical JSON written directly (a list of
    strings: each as `json.dumps` writes it with `ensure_ascii=False`)."""
    return id_of_json(f'["log",{encode_basestring(family)},{encode_basestring(external_id)}]')


def nearest_format(obj: dict[str, Any]) -> str:
    """Why a record is in no format: the format sharing most fields, and what it needs."""
    names = set(obj)
    best = max(FORMAT_FIELDS, key=lambda f: len(names & set(FORMAT_FIELDS[f])))
    shown = ", ".join(f"`{n}`" for n in sorted(names)[:8]) or "none"
    if not names & set(FORMAT_FIELDS[best]):
        return (
            f"no log format: found {shown}; expected an OpenAI log (`request`, `response`), a "
            "LangSmith run or feedback, a Langfuse trace or score, a Chatbot Arena record or "
            "`messages`"
        )
    return f"not a complete {best} record: it needs {FORMAT_NEEDS[best]}; found {shown}"


def format_of(obj: dict[str, Any]) -> str | None:
    """The format a record's fields name; None when it is in none."""
    if isinstance(obj.get("request"), dict) and "response" in obj:
        return "openai-log"
    if "conversation_a" in obj and "conversation_b" in obj:
        return "arena"
    if "inputs" in obj and "outputs" in obj:
        return "langsmith"
    if "run_id" in obj and "key" in obj:
        return "langsmith-feedback"
    if "traceId" in obj and "name" in obj and "value" in obj:
        return "langfuse-score"
    if "input" in obj and "output" in obj and ("id" in obj or "scores" in obj):
        return "langfuse"
    if "messages" in obj or "conversations" in obj:
        return "messages"
    return None


def parse_log_record(obj: Any) -> Parsed:
    """The conversations (or detached feedback) of one log record, or why it has none."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    log_format = format_of(obj)
    if log_format is None:
        return nearest_format(obj)
    parsed = PARSERS[log_format](obj)
    if isinstance(parsed, str):
        return f"{log_format}: {parsed}"
    return parsed


def _pick(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _feedback_items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _feedback_of(item: Any, turn_index: int | None = None) -> Feedback | None:
    """One feedback object (LangSmith, Langfuse, per-turn) or bare thumb/score as Feedback."""
    if not isinstance(item, dict):
        return make_feedback(value=item, turn_index=turn_index)
    score = item.get("score", item.get("rating", item.get("thumb")))
    value = item.get("value", item.get("stringValue"))
    if item.get("dataType") == "BOOLEAN" and isinstance(value, int | float):
        score, value = bool(value), None
    return make_feedback(
        score=score,
        value=value,
        comment=item.get("comment"),
        correction=item.get("correction"),
        key=item.get("key", item.get("name")),
        turn_index=turn_index,
        origin_id=item.get("id"),
    )


def _finish(
    log_format: str,
    family: str,
    external_id: str | None,
    turns: list[Turn],
    model: str | None,
    user_id: str | None,
    started_at: datetime | None,
    feedback: list[Feedback],
) -> Conversation | str:
    """The conversation, checked (a user turn and an answer), feedback on the last answer
    unless it names its turn."""
    answers = assistant_indexes(turns)
    if not answers or not any(t.role == "user" for t in turns):
        return "needs a user turn and an assistant answer"
    resolved = tuple(
        f if f.turn_index is not None else replace(f, turn_index=answers[-1]) for f in feedback
    )
    key = external_id or content_id(
        [[t.role, t.content] for t in turns] + [model, user_id, str(started_at)]
    )
    return Conversation(
        conversation_id=conversation_id_of(family, key),
        log_format=log_format,
        turns=tuple(turns),
        model=model,
        user_id=user_id,
        started_at=started_at,
        feedback=resolved,
        external_id=external_id,
    )


def parse_openai_log(obj: dict[str, Any]) -> list[Conversation] | str:
    request, response = obj["request"], obj.get("response")
    turns = read_turns(request.get("messages"), "request.messages")
    if isinstance(turns, str):
        return turns
    choices = _pick(response, "choices")
    if not isinstance(choices, list) or not choices:
        return "`response.choices` must be a non-empty array"
    answer = read_turn(_pick(choices[0], "message"), "`response.choices[0].message`")
    if isinstance(answer, str):
        return answer
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    feedback = [
        f
        for item in _feedback_items(obj.get("feedback", metadata.get("feedback")))
        if (f := _feedback_of(item)) is not None
    ]
    conversation = _finish(
        "openai-log",
        "openai",
        _first_text(_pick(response, "id"), obj.get("id")),
        [*turns, answer],
        _first_text(_pick(response, "model"), request.get("model")),
        _first_text(metadata.get("user_id"), metadata.get("user"), metadata.get("end_user"))
        or _first_text(request.get("user"), obj.get("client_id")),
        read_time(obj.get("timestamp")) or read_time(_pick(response, "created")),
        feedback,
    )
    return [conversation] if isinstance(conversation, Conversation) else conversation


def _langsmith_output(outputs: Any) -> Turn | str:
    """The answer in a LangSmith run's `outputs`."""
    if isinstance(outputs, str):
        return Turn("assistant", outputs)
    if not isinstance(outputs, dict):
        return "`outputs` must be an object"
    generations = outputs.get("generations")
    if isinstance(generations, list) and generations:
        first = generations[0][0] if isinstance(generations[0], list) else generations[0]
        if isinstance(first, dict):
            message = first.get("message") or {"role": "assistant", "content": first.get("text")}
            return _as_answer(read_turn(message, "`outputs.generations`"))
    choices = outputs.get("choices")
    if isinstance(choices, list) and choices:
        return _as_answer(read_turn(_pick(choices[0], "message"), "`outputs.choices`"))
    messages = outputs.get("messages")
    if isinstance(messages, list) and messages:
        return _as_answer(read_turn(messages[-1], "`outputs.messages`"))
    for name in ("output", "answer", "content", "text"):
        value = outputs.get(name)
        if isinstance(value, dict):
            return _as_answer(read_turn({"role": "assistant", **value}, f"`outputs.{name}`"))
        if isinstance(value, str):
            return Turn("assistant", value)
    return "`outputs` holds no answer (`output`, `messages`, `generations` or `choices`)"


def _as_answer(turn: Turn | str) -> Turn | str:
    return turn if isinstance(turn, str) else Turn("assistant", turn.content)


def parse_langsmith_run(obj: dict[str, Any]) -> list[Conversation] | str:
    inputs = obj["inputs"]
    messages = _pick(inputs, "messages")
    if messages is None and isinstance(inputs, dict):
        messages = _first_text(inputs.get("input"), inputs.get("question"), inputs.get("prompt"))
    turns = read_turns(messages if messages is not None else inputs, "inputs.messages")
    if isinstance(turns, str):
        return turns
    answer = _langsmith_output(obj["outputs"])
    if isinstance(answer, str):
        return answer
    metadata = _pick(obj, "extra", "metadata") or {}
    feedback = [
        f for item in _feedback_items(obj.get("feedback")) if (f := _feedback_of(item)) is not None
    ]
    conversation = _finish(
        "langsmith",
        "langsmith",
        _first_text(obj.get("id"), obj.get("run_id")),
        [*turns, answer],
        _first_text(
            metadata.get("ls_model_name"), _pick(obj, "extra", "invocation_params", "model")
        ),
        _first_text(metadata.get("user_id"), metadata.get("user")),
        read_time(obj.get("start_time")),
        feedback,
    )
    return [conversation] if isinstance(conversation, Conversation) else conversation


def parse_langsmith_feedback(obj: dict[str, Any]) -> DetachedFeedback | str:
    run_id = _first_text(obj.get("run_id"))
    feedback = _feedback_of(obj)
    if run_id is None or feedback is None:
        return "needs a `run_id` and a `score`, `value`, `comment` or `correction`"
    return DetachedFeedback(
        "langsmith-feedback", conversation_id_of("langsmith", run_id), run_id, feedback
    )


def parse_langfuse_trace(obj: dict[str, Any]) -> list[Conversation] | str:
    given = obj["input"]
    messages = _pick(given, "messages") if isinstance(given, dict) else given
    turns = read_turns(messages, "input")
    if isinstance(turns, str):
        return turns
    output = obj["output"]
    if isinstance(output, dict):
        answer = _as_answer(read_turn({"role": "assistant", **output}, "`output`"))
    elif isinstance(output, str):
        answer = Turn("assistant", output)
    else:
        answer = "`output` must be text or a message"
    if isinstance(answer, str):
        return answer
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    feedback = [
        f for item in _feedback_items(obj.get("scores")) if (f := _feedback_of(item)) is not None
    ]
    conversation = _finish(
        "langfuse",
        "langfuse",
        _first_text(obj.get("id")),
        [*turns, answer],
        _first_text(metadata.get("model"), obj.get("model")),
        _first_text(obj.get("userId")),
        read_time(obj.get("timestamp")),
        feedback,
    )
    return [conversation] if isinstance(conversation, Conversation) else conversation


def parse_langfuse_score(obj: dict[str, Any]) -> DetachedFeedback | str:
    trace_id = _first_text(obj.get("traceId"))
    feedback = _feedback_of(obj)
    if trace_id is None or feedback is None:
        return "needs a `traceId` and a `value`"
    return DetachedFeedback(
        "langfuse-score", conversation_id_of("langfuse", trace_id), trace_id, feedback
    )


def parse_arena(obj: dict[str, Any]) -> list[Conversation] | str:
    winner = obj.get("winner")
    if winner not in ARENA_WINNERS:
        return f"`winner` must be one of {', '.join(ARENA_WINNERS)} (got {winner!r})"
    base = _first_text(obj.get("question_id"), obj.get("id"))
    conversations = []
    for side, label in zip("ab", ARENA_WINNERS[winner], strict=True):
        turns = read_turns(obj.get(f"conversation_{side}"), f"conversation_{side}")
        if isinstance(turns, str):
            return turns
        vote = Feedback(kind="vote", label=label, value=winner, key="arena_vote")
        conversation = _finish(
            "arena",
            "arena",
            f"{base}:{side}" if base else None,
            turns,
            text_or_none(obj.get(f"model_{side}")),
            _first_text(obj.get("judge")),
            read_time(obj.get("tstamp")),
            [vote],
        )
        if isinstance(conversation, str):
            return f"conversation_{side} {conversation}"
        conversations.append(conversation)
    return conversations


def parse_messages_log(obj: dict[str, Any]) -> list[Conversation] | str:
    field = "messages" if "messages" in obj else "conversations"
    raw = obj[field]
    turns = read_turns(raw, field)
    if isinstance(turns, str):
        return turns
    feedback: list[Feedback] = []
    for index, message in enumerate(raw):
        given = message.get("feedback") if isinstance(message, dict) else None
        if given is None:
            continue
        answers = [i for i in assistant_indexes(turns) if i <= index]
        if not answers:
            return f"`{field}` turn {index + 1} has feedback but no assistant turn before it"
        for item in _feedback_items(given):
            read = _feedback_of(item, answers[-1])
            if read is not None:
                feedback.append(read)
    for item in _feedback_items(obj.get("feedback")):
        read = _feedback_of(item)
        if read is not None:
            feedback.append(read)
    conversation = _finish(
        "messages",
        "messages",
        _first_text(obj.get("id"), obj.get("conversation_id")),
        turns,
        _first_text(obj.get("model")),
        _first_text(obj.get("user_id"), obj.get("user")),
        read_time(obj.get("timestamp", obj.get("created_at"))),
        feedback,
    )
    return [conversation] if isinstance(conversation, Conversation) else conversation


PARSERS = {
    "openai-log": parse_openai_log,
    "langsmith": parse_langsmith_run,
    "langsmith-feedback": parse_langsmith_feedback,
    "langfuse": parse_langfuse_trace,
    "langfuse-score": parse_langfuse_score,
    "arena": parse_arena,
    "messages": parse_messages_log,
}
