"""Natural forms of a committed answer: read where the reply commits, never where it hedges."""

from __future__ import annotations

import pytest

from flywheel.evaluators.final_answer import extract_final_answer
from flywheel.evaluators.skills import check_answer

ADD = "What is 3 + 4? End your reply with a line of the form Answer: followed by the result."
REVERSE = 'Reverse the word "pig". Give the final result on the last line, after Answer:'


@pytest.mark.parametrize(
    ("reply", "committed"),
    [
        ("3 + 4 = 7.", "7"),
        ("Adding them up:\n3 + 4 = 7", "7"),
        ("The answer is 7.", "7"),
        ("So the final answer is: **7**", "7"),
        ("The sum of 3 and 4 is 7!", "7"),
        ("The final answer is $\\boxed{7}$.", "7"),
        ("We get \\boxed{7}", "7"),
        ("7", "7"),
        ("**7**.", "7"),
        ("The word reversed is gip.", "gip"),
        ("The answer is 7.\nActually, it is 8.", "8"),  # the last line decides
    ],
)
def test_natural_forms_are_read(reply: str, committed: str) -> None:
    assert extract_final_answer(reply) == committed


@pytest.mark.parametrize(
    "reply",
    [
        "It is 7, or maybe 8.",
        "The sum of 3 and 4 is 7, not 8.",
        "7? No, 8 is more likely",
        "3 + 4 = 7 and 5 + 2 = 7 too",
        "Either \\boxed{7} or \\boxed{8}",
        "The answer is 7 or 8.",
        "I am not sure what 3 + 4 is",
        "The answer: 7",  # not a form we read: the colon without "is" is not at a line start
        "Seven plus nothing\nis hard to say, 7 perhaps",
        "The answer is 7.\nAnswer: 8\nWait, no.",  # an answer line turns natural forms off
        "The answer is 7.\nAnswer:",
    ],
)
def test_hedged_or_ambiguous_replies_commit_to_nothing(reply: str) -> None:
    assert extract_final_answer(reply) is None


def test_an_answer_line_wins_over_a_natural_form_before_it() -> None:
    assert extract_final_answer("3 + 4 = 7.\nAnswer: 8") == "8"
    assert check_answer(ADD, "3 + 4 = 7.\nAnswer: 8") is False


@pytest.mark.parametrize(
    ("reply", "right"),
    [
        ("3 + 4 = 7.", True),
        ("3 + 4 = 8.", False),
        ("The answer is 7.", True),
        ("The answer is 8.", False),
        ("The answer is seven.", False),  # numeric skills need a number
        ("It is 7, or maybe 8.", False),
        ("7", True),
    ],
)
def test_natural_forms_are_checked_both_ways(reply: str, right: bool) -> None:
    assert check_answer(ADD, reply) is right


def test_a_word_answer_in_prose_is_checked_both_ways() -> None:
    assert check_answer(REVERSE, 'Reversed, "pig" is gip.') is True
    assert check_answer(REVERSE, 'Reversed, "pig" is pig.') is False
    assert check_answer(REVERSE, "The reversed word is gip, I think") is False
