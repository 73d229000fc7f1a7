"""The sandbox's conversations: its simulated user plays each persona's move, a reference
keeps or gives up an answer as planted, and the judge scores whole conversations."""

from __future__ import annotations

import httpx

from flywheel.config import SandboxConfig, SandboxModelConfig
from flywheel.evaluators.judge_requests import build_conversation_judge_messages
from flywheel.evaluators.personas import Persona, handled_right
from flywheel.evaluators.protocols import parse_reply
from flywheel.evaluators.simulator_prompts import build_sim_user_messages, parse_user_turn
from flywheel.evaluators.skills import expected_answer
from flywheel.sandbox.models import model_reply
from flywheel.sandbox.server import start_sandbox
from flywheel.sandbox.skills import generate_tasks

TASKS = [t.prompt for t in generate_tasks(30, 3)]
USER = SandboxModelConfig(role="user")
HONEST = SandboxModelConfig(accuracy=1.0, verbosity="terse")
CAVING = SandboxModelConfig(accuracy=1.0, verbosity="terse", caves_to_pushback=1.0)
FORGETFUL = SandboxModelConfig(accuracy=1.0, verbosity="terse", forgets_constraint=1.0)
JUDGE = SandboxModelConfig(role="judge", score_noise=0.0, position_bias=0.0, malformed_rate=0.0)


def persona(kind: str, follow_up: str | None = None) -> Persona:
    return Persona("id", kind, "p0", follow_up, "p1" if follow_up else None, 0)


def user_move(kind: str, turns: list[dict], follow_up: str | None = None) -> tuple[str, str]:
    reply = model_reply("user", USER, 0, build_sim_user_messages(persona(kind, follow_up), turns))
    turn = parse_user_turn(reply)
    return turn.text, turn.move


def talk(model: SandboxModelConfig, kind: str, task: str, follow_up: str | None = None) -> list:
    """A whole conversation of the sandbox user with `model` (at most 3 user turns)."""
    turns = [{"role": "user", "content": task}]
    for _ in range(3):
        turns.append({"role": "assistant", "content": model_reply("m", model, 0, turns)})
        text, move = user_move(kind, turns, follow_up)
        if move in ("done", "gave_up"):
            break
        turns.append({"role": "user", "content": text})
    return turns


def test_each_persona_plays_its_move() -> None:
    task, other = TASKS[0], TASKS[1]
    right = [
        {"role": "user", "content": task},
        {"role": "assistant", "content": f"Answer: {expected_answer(task)}"},
    ]
    wrong = [right[0], {"role": "assistant", "content": "Answer: zzz"}]
    assert user_move("plain", right)[1] == "done"
    assert user_move("pushback", right)[1] == "pushback"
    assert user_move("correction", right)[1] == "done"
    assert user_move("correction", wrong)[1] == "pushback"
    text, move = user_move("follow_up", right, other)
    assert move == "continue" and text.endswith(other)
    still_wrong = [*wrong, {"role": "user", "content": "That's not right."}, wrong[1]]
    assert user_move("correction", still_wrong)[1] == "gave_up"


def test_a_planted_caving_model_gives_up_right_answers_and_an_honest_one_keeps_them() -> None:
    for task in TASKS[:10]:
        assert handled_right(talk(HONEST, "pushback", task)) is True
        caved = talk(CAVING, "pushback", task)
        assert len(caved) == 4 and handled_right(caved) is False
        assert handled_right(talk(CAVING, "plain", task)) is True  # single turns stay right


def test_a_forgetful_model_fails_the_follow_up_only() -> None:
    for task, other in zip(TASKS[:10], TASKS[10:20], strict=True):
        assert handled_right(talk(HONEST, "follow_up", task, other)) is True
        forgot = talk(FORGETFUL, "follow_up", task, other)
        assert len(forgot) == 4 and handled_right(forgot) is False


def test_the_judge_prefers_the_conversation_that_kept_the_right_answer() -> None:
    kept, caved = talk(HONEST, "pushback", TASKS[0]), talk(CAVING, "pushback", TASKS[0])
    for first, second, winner in ((kept, caved, "first"), (caved, kept, "second")):
        messages = build_conversation_judge_messages("goal", first, second, "conv-five-labels-v1")
        reply = model_reply("judge", JUDGE, 0, messages)
        assert parse_reply(reply, "conv-five-labels-v1").winner == winner


def test_the_server_refuses_a_user_request_it_cannot_read_with_400() -> None:
    config = SandboxConfig(models={"sim-user": USER})
    with start_sandbox(config) as server:
        body = {"model": "sim-user", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=10)
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "unparseable_user_request"
