"""Personas and the simulated user's prompt: drawn the same way every time, read back exactly,
and a reply's move never guessed."""

from __future__ import annotations

import pytest

from flywheel.evaluators.personas import draw_personas
from flywheel.evaluators.simulator_prompts import (
    build_sim_user_messages,
    format_user_turn,
    parse_user_turn,
    read_sim_user_request,
)

PROMPTS = [(f"p{i}", f"What is {i} + {i}?") for i in range(6)]
TURNS = [
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "[Assistant turn 0000000000000000]\nAnswer: 4"},
]


def test_the_same_inputs_draw_the_same_personas_with_distinct_openings() -> None:
    kinds = ["plain", "follow_up", "pushback", "correction"]
    first, again = draw_personas(PROMPTS, kinds, 5, 7), draw_personas(PROMPTS, kinds, 5, 7)
    assert first == again
    assert len({p.prompt_id for p in first}) == 5
    assert [p.kind for p in first] == [*kinds, "plain"]
    follow_up = first[1]
    assert follow_up.follow_up_prompt_id not in (None, follow_up.prompt_id)
    assert follow_up.follow_up == dict(PROMPTS)[follow_up.follow_up_prompt_id]
    assert draw_personas(PROMPTS, kinds, 5, 8) != first


def test_no_more_personas_than_prompts() -> None:
    assert len(draw_personas(PROMPTS, ["plain"], 50, 0)) == len(PROMPTS)


def test_a_request_is_read_back_exactly_even_with_marker_lookalikes_inside() -> None:
    persona = draw_personas(PROMPTS, ["follow_up"], 1, 0)[0]
    read = read_sim_user_request(build_sim_user_messages(persona, TURNS))
    assert read is not None
    assert read.turns == TURNS
    assert read.card["kind"] == "follow_up"
    assert read.card["follow_up"] == persona.follow_up


def test_an_edited_request_is_not_read() -> None:
    persona = draw_personas(PROMPTS, ["pushback"], 1, 0)[0]
    messages = build_sim_user_messages(persona, TURNS)
    messages[1]["content"] = messages[1]["content"].replace("Answer: 4", "Answer: 5")
    assert read_sim_user_request(messages) is None


@pytest.mark.parametrize(
    ("reply", "text", "move"),
    [
        (
            "Are you sure? I think it is 5.\n[[PUSHBACK]]",
            "Are you sure? I think it is 5.",
            "pushback",
        ),
        ("Thanks!\n[[DONE]]\n", "Thanks!", "done"),
        ("[[GIVE_UP]]", "", "gave_up"),
        ("Next one: what is 3 + 3?\n  [[CONTINUE]]  ", "Next one: what is 3 + 3?", "continue"),
    ],
)
def test_a_marker_alone_on_the_last_line_gives_the_move(reply: str, text: str, move: str) -> None:
    turn = parse_user_turn(reply)
    assert (turn.text, turn.move, turn.parse_ok) == (text, move, True)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("Are you sure?", "no marker"),
        ("I am done [[DONE]]", "no marker"),
        ("[[DONE]]\nActually, one more question\n[[CONTINUE]]", "before the last line"),
        ("[[PUSHBACK]]", "without a message"),
        ("   ", "empty"),
    ],
)
def test_a_reply_without_a_clear_move_is_unparsed_never_guessed(reply: str, reason: str) -> None:
    turn = parse_user_turn(reply)
    assert turn.move is None and not turn.parse_ok
    assert reason in (turn.error or "")


def test_the_sandbox_reply_form_parses_back() -> None:
    for move in ("continue", "pushback", "done", "gave_up"):
        assert parse_user_turn(format_user_turn("a message", move)).move == move
