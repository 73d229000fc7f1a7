"""Production log formats, read both ways: a record of each format becomes its conversations
and feedback; a broken one is named with the nearest format and what it lacks."""

from __future__ import annotations

from datetime import datetime

from flywheel.pool.logs_feedback import feedback_label
from flywheel.pool.logs_formats import (
    Conversation,
    DetachedFeedback,
    conversation_id_of,
    parse_log_record,
)
from flywheel.pool.logs_turns import Turn

OPENAI_LOG = {
    "request": {
        "model": "champion",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is 2 + 3?"}]},
        ],
    },
    "response": {
        "id": "chatcmpl-7",
        "model": "r3-dpo",
        "created": 1764990000,
        "choices": [{"message": {"role": "assistant", "content": "Answer: 5"}}],
    },
    "metadata": {"user_id": "alice", "feedback": {"thumb": "up"}},
    "workload_id": "math",
}


def only(parsed) -> Conversation:
    assert isinstance(parsed, list) and len(parsed) == 1, parsed
    return parsed[0]


def test_openai_log_reads_request_answer_model_user_time_and_thumb() -> None:
    conversation = only(parse_log_record(OPENAI_LOG))
    assert conversation.log_format == "openai-log"
    assert conversation.turns == (
        Turn("system", "Be brief."),
        Turn("user", "What is 2 + 3?"),
        Turn("assistant", "Answer: 5"),
    )
    assert conversation.model == "r3-dpo"
    assert conversation.user_id == "alice"
    assert conversation.started_at == datetime(2025, 12, 6, 3, 0)
    assert conversation.conversation_id == conversation_id_of("openai", "chatcmpl-7")
    (thumb,) = conversation.feedback
    assert (thumb.kind, thumb.label, thumb.value, thumb.turn_index) == (
        "thumb",
        "positive",
        "up",
        2,
    )


def test_openai_log_without_choices_is_named_with_what_is_missing() -> None:
    record = {**OPENAI_LOG, "response": {"id": "x", "choices": []}}
    assert parse_log_record(record) == ("openai-log: `response.choices` must be a non-empty array")


def test_langsmith_run_with_feedback_and_correction() -> None:
    run = {
        "id": "run-1",
        "run_type": "llm",
        "inputs": {"messages": [[{"type": "human", "content": "Reverse the word cat."}]]},
        "outputs": {
            "generations": [[{"text": "tac", "message": {"type": "ai", "content": "tca"}}]]
        },
        "start_time": "2026-12-05T10:00:00Z",
        "extra": {"metadata": {"user_id": "bob", "ls_model_name": "r2-sft"}},
        "feedback": [
            {"key": "user_score", "score": 0, "comment": "wrong"},
            {"key": "correction", "correction": {"output": "Answer: tac"}},
        ],
    }
    conversation = only(parse_log_record(run))
    assert conversation.turns[-1] == Turn("assistant", "tca")
    assert (conversation.model, conversation.user_id) == ("r2-sft", "bob")
    score, correction = conversation.feedback
    assert (score.kind, score.label, score.score, score.comment) == (
        "score",
        "negative",
        0.0,
        "wrong",
    )
    assert (correction.kind, correction.label, correction.correction) == (
        "correction",
        "negative",
        "Answer: tac",
    )


def test_langsmith_feedback_on_its_own_points_at_its_run() -> None:
    parsed = parse_log_record({"run_id": "run-1", "key": "thumbs", "score": 1})
    assert isinstance(parsed, DetachedFeedback)
    assert parsed.conversation_id == conversation_id_of("langsmith", "run-1")
    assert (parsed.feedback.label, parsed.feedback.key) == ("positive", "thumbs")


def test_langsmith_run_without_outputs_is_named_as_the_nearest_format() -> None:
    reason = parse_log_record({"id": "run-2", "inputs": {"input": "hi"}, "run_type": "llm"})
    assert reason.startswith(
        "not a complete langsmith record: it needs `id`, `inputs` and `outputs`"
    )


def test_langfuse_trace_with_boolean_and_categorical_scores() -> None:
    trace = {
        "id": "tr-1",
        "timestamp": "2026-12-05T11:30:00.000Z",
        "userId": "carol",
        "input": {"messages": [{"role": "user", "content": "Count the r in 'mirror'."}]},
        "output": {"role": "assistant", "content": "Answer: 3"},
        "metadata": {"model": "r1-sft"},
        "scores": [
            {"name": "thumbs", "value": 1, "dataType": "BOOLEAN"},
            {"name": "quality", "value": "helpful", "dataType": "CATEGORICAL", "comment": "ok"},
        ],
    }
    conversation = only(parse_log_record(trace))
    assert conversation.started_at == datetime(2026, 12, 5, 11, 30)
    thumbs, quality = conversation.feedback
    assert (thumbs.kind, thumbs.label, thumbs.key) == ("thumb", "positive", "thumbs")
    assert (quality.kind, quality.label, quality.comment) == ("thumb", "positive", "ok")


def test_langfuse_score_on_its_own_and_a_trace_without_output() -> None:
    score = parse_log_record(
        {"traceId": "tr-1", "name": "stars", "value": 2, "dataType": "NUMERIC"}
    )
    assert isinstance(score, DetachedFeedback)
    assert (score.feedback.label, score.feedback.score) == ("negative", 2.0)
    reason = parse_log_record({"id": "tr-2", "input": "hi", "output": 5})
    assert reason == "langfuse: `output` must be text or a message"


def test_arena_record_is_two_conversations_with_the_vote() -> None:
    record = {
        "question_id": "q9",
        "model_a": "r1-sft",
        "model_b": "ref:strong",
        "winner": "model_b",
        "judge": "arena_user_1",
        "tstamp": 1764990000.5,
        "conversation_a": [
            {"role": "user", "content": "Sort the letters of 'dcba'."},
            {"role": "assistant", "content": "Answer: abdc"},
        ],
        "conversation_b": [
            {"role": "user", "content": "Sort the letters of 'dcba'."},
            {"role": "assistant", "content": "Answer: abcd"},
        ],
    }
    side_a, side_b = parse_log_record(record)
    assert (side_a.model, side_a.feedback[0].label) == ("r1-sft", "negative")
    assert (side_b.model, side_b.feedback[0].label) == ("ref:strong", "positive")
    assert side_a.user_id == side_b.user_id == "arena_user_1"
    assert side_a.conversation_id != side_b.conversation_id
    bad = parse_log_record({**record, "winner": "both"})
    assert bad.startswith("arena: `winner` must be one of model_a, model_b, tie")


def test_messages_with_per_turn_feedback_on_each_answer() -> None:
    record = {
        "id": "conv-3",
        "model": "r2-dpo",
        "user_id": "dave",
        "conversations": [
            {"from": "human", "value": "What is 7 * 6?"},
            {"from": "gpt", "value": "Answer: 48", "feedback": "thumbs_down"},
            {"from": "human", "value": "No, it is 42."},
            {"from": "gpt", "value": "Answer: 42", "feedback": {"rating": 5, "comment": "thx"}},
        ],
    }
    conversation = only(parse_log_record(record))
    down, five = conversation.feedback
    assert (down.turn_index, down.label) == (1, "negative")
    assert (five.turn_index, five.label, five.kind, five.comment) == (3, "positive", "score", "thx")


def test_messages_without_an_answer_and_unknown_roles_are_refused() -> None:
    assert parse_log_record({"messages": [{"role": "user", "content": "hi"}]}) == (
        "messages: needs a user turn and an assistant answer"
    )
    reason = parse_log_record({"messages": [{"role": "robot", "content": "hi"}]})
    assert reason.startswith("messages: `messages` turn 1 has the unknown role 'robot'")


def test_a_record_in_no_format_names_the_nearest_one() -> None:
    assert parse_log_record({"model_a": "x", "model_b": "y", "winner": "tie"}).startswith(
        "not a complete arena record: it needs `model_a`, `model_b`, `winner`, "
        "`conversation_a` and `conversation_b`"
    )
    assert parse_log_record({"foo": 1}).startswith("no log format: found `foo`")
    assert parse_log_record([1, 2]) == "not a JSON object"


def test_feedback_labels_read_thumbs_scales_and_never_guess() -> None:
    assert feedback_label("thumbs_up") == "positive"
    assert feedback_label(False) == "negative"
    assert feedback_label(0.7) == "positive"
    assert feedback_label(3) == "neutral"  # 1-5 scale
    assert feedback_label(8) == "positive"  # 1-10 scale
    assert feedback_label(42) is None  # unknown scale
    assert feedback_label("maybe") is None
    assert feedback_label(None, None, "Answer: 42") == "negative"


def test_a_conversation_id_is_the_content_id_of_its_family_and_log_id() -> None:
    from flywheel.warehouse.ids import content_id

    for external_id in ["c1", 'say "hi"\\n', "tab\there\nnewline\x00", "é 漢字 👍", "", " "]:
        expected = content_id(["log", "openai", external_id])
        assert conversation_id_of("openai", external_id) == expected


def test_the_fast_turn_reading_gives_what_the_full_reading_gives() -> None:
    from flywheel.pool.logs_turns import plain_turn, read_turn

    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "system", "content": ""},
        {"role": "developer", "content": "Be brief."},
        {"role": "human", "content": "x"},
        {"role": "User", "content": "capital role"},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f"}}]},
        {"role": "user", "content": [{"type": "text", "text": "parts"}]},
        {"role": ["user"], "content": "a list role"},
        {"role": "wizard", "content": "an unknown role"},
        {"type": "human", "content": "LangChain"},
        {"from": "gpt", "value": "ShareGPT"},
        {"role": "user", "content": "x", "kwargs": {"content": "serialised"}},
        "a bare string",
        7,
    ]
    for message in messages:
        fast = plain_turn(message)
        assert fast is None or fast == read_turn(message, "turn"), message
    assert plain_turn(messages[0]) == Turn("user", "Hi")
    assert plain_turn(messages[6]) is None  # an empty answer: tool calls are read the long way
