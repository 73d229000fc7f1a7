"""evaluators/persona_goals.py: simulated users' goals drawn from logged conversations, on
literal openings: the logged reaction gives the kind, the draw is seeded and repeatable, an
opening is never drawn twice, and `goals` says how many come from the logs."""

from __future__ import annotations

import pytest

from flywheel.evaluators.persona_goals import (
    LoggedOpening,
    draw_goal_personas,
    draw_log_personas,
    logged_kind,
)
from flywheel.evaluators.personas import GOALS, draw_personas

PERSONA_KINDS_ALL = list(GOALS)
EVAL = [(f"e{i}", f"What is {i} + 1?") for i in range(8)]
OPENINGS = [
    LoggedOpening("log-a", "p-a", None, first_answer_negative=True),
    LoggedOpening("log-b", "p-b", "Thanks! Now reverse the word cat.", False),
    LoggedOpening("log-c", "p-c", None, False),
    LoggedOpening("log-d", "p-d", "No, that's wrong.", True),
    LoggedOpening("log-e", "e3", "And 5 + 5?", False),  # a logged opening that is an eval prompt
]


def test_the_logged_reaction_gives_the_kind() -> None:
    assert [logged_kind(o) for o in OPENINGS] == [
        "correction",
        "follow_up",
        "plain",
        "correction",
        "follow_up",
    ]


def test_a_logged_follow_up_is_the_users_next_turn_and_the_persona_keeps_its_lineage() -> None:
    personas = draw_log_personas(OPENINGS, PERSONA_KINDS_ALL, 10, seed=3)
    by_log = {p.log_conversation_id: p for p in personas}
    assert by_log["log-b"].follow_up == "Thanks! Now reverse the word cat."
    assert by_log["log-b"].follow_up_prompt_id is None
    assert by_log["log-d"].follow_up is None  # a correction asks for a fix, not a next question
    assert {p.goal_source for p in personas} == {"logs"}
    assert {p.prompt_id for p in personas} == {"p-a", "p-b", "p-c", "p-d", "e3"}


def test_the_draw_is_seeded_and_repeatable() -> None:
    first = draw_log_personas(OPENINGS, PERSONA_KINDS_ALL, 3, seed=7)
    assert first == draw_log_personas(list(reversed(OPENINGS)), PERSONA_KINDS_ALL, 3, seed=7)
    orders = {
        tuple(p.log_conversation_id for p in draw_log_personas(OPENINGS, PERSONA_KINDS_ALL, 5, s))
        for s in range(6)
    }
    assert len(orders) > 1  # the seed changes the order
    assert len({p.seed for p in first}) == 3


def test_only_the_configured_kinds_are_drawn_and_pushback_never_from_logs() -> None:
    personas = draw_log_personas(OPENINGS, ["plain", "pushback"], 10, seed=0)
    assert [(p.kind, p.log_conversation_id) for p in personas] == [("plain", "log-c")]


def test_a_conversation_logged_later_moves_the_draw_only_where_it_ranks() -> None:
    before = draw_log_personas(OPENINGS, PERSONA_KINDS_ALL, 3, seed=1)
    for i in range(20):
        later = [*OPENINGS, LoggedOpening(f"log-new-{i}", f"p-new-{i}", None, False)]
        after = draw_log_personas(later, PERSONA_KINDS_ALL, 3, seed=1)
        assert len(set(before) - set(after)) <= 1  # at most the one it displaced


def test_one_persona_per_opening_prompt() -> None:
    twice = [*OPENINGS, LoggedOpening("log-a2", "p-a", "Again?", False)]
    personas = draw_log_personas(twice, PERSONA_KINDS_ALL, 10, seed=0)
    assert sorted(p.prompt_id for p in personas) == sorted({o.prompt_id for o in twice})
    assert next(p for p in personas if p.prompt_id == "p-a").log_conversation_id == "log-a"


def test_eval_source_ignores_the_logs() -> None:
    personas = draw_goal_personas(EVAL, OPENINGS, ["plain", "follow_up"], 4, 0, "eval")
    assert personas == draw_personas(EVAL, ["plain", "follow_up"], 4, 0)


def test_logs_source_draws_from_the_logs_first_and_fills_from_eval_prompts() -> None:
    personas = draw_goal_personas(EVAL, OPENINGS, PERSONA_KINDS_ALL, 8, 0, "logs")
    sources = [p.goal_source for p in personas]
    assert sources == ["logs"] * 5 + ["eval"] * 3
    openings = [p.prompt_id for p in personas]
    assert len(set(openings)) == 8  # e3 is a logged opening: no eval persona opens with it too


def test_both_takes_at_most_half_from_the_logs() -> None:
    personas = draw_goal_personas(EVAL, OPENINGS, PERSONA_KINDS_ALL, 6, 0, "both")
    assert [p.goal_source for p in personas].count("logs") == 3
    assert len(personas) == 6


def test_an_unknown_goal_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown goal source 'log'"):
        draw_goal_personas(EVAL, OPENINGS, ["plain"], 4, 0, "log")  # type: ignore[arg-type]
