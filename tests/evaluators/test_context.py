"""The context budget's one rule: keep the system prompt and the latest turns, drop the oldest."""

from __future__ import annotations

from flywheel.evaluators.context import content_chars, fit_conversation

SYSTEM = {"role": "system", "content": "You are terse."}
CONVERSATION = [
    SYSTEM,
    {"role": "user", "content": "u1 " * 10},
    {"role": "assistant", "content": "a1 " * 10},
    {"role": "user", "content": "u2 " * 10},
    {"role": "assistant", "content": "a2 " * 10},
    {"role": "user", "content": "last question"},
]


def test_no_budget_or_a_fitting_conversation_keeps_every_turn() -> None:
    assert fit_conversation(CONVERSATION, None).messages == CONVERSATION
    fitted = fit_conversation(CONVERSATION, content_chars(CONVERSATION))
    assert (fitted.messages, fitted.n_turns_dropped) == (CONVERSATION, 0)


def test_oldest_exchanges_go_first_and_the_system_prompt_stays() -> None:
    budget = content_chars(CONVERSATION) - 1  # one exchange too many
    fitted = fit_conversation(CONVERSATION, budget)
    assert fitted.n_turns_dropped == 2
    assert fitted.messages == [SYSTEM, *CONVERSATION[3:]]  # still starts with a user turn


def test_the_last_user_turn_is_sent_even_over_the_budget() -> None:
    fitted = fit_conversation(CONVERSATION, 5)
    assert fitted.messages == [SYSTEM, CONVERSATION[-1]]
    assert fitted.n_turns_dropped == 4


def test_the_measure_counts_what_the_request_adds() -> None:
    overhead = 1000
    fitted = fit_conversation(
        CONVERSATION,
        content_chars(CONVERSATION) + 999,
        lambda kept, _n: content_chars(kept) + overhead,
    )
    assert fitted.n_turns_dropped == 2  # one character over with every turn: one exchange goes
