"""The skill checkers: literal prompts and replies, and agreement with the generators."""

from __future__ import annotations

import random

import pytest

from flywheel.evaluators.skills import (
    SKILLS,
    check_answer,
    expected_answer,
    extract_final_answer,
    identify_skill,
    render_answer,
)
from flywheel.sandbox.skills import generate_tasks, wrong_answer


@pytest.mark.parametrize(
    ("prompt", "skill", "answer"),
    [
        ("What is 37 + 48?", "arithmetic", "85"),
        ("Quick question: Compute 12 x 7. Reply briefly.", "arithmetic", "84"),
        ("Subtract 8 from 20.", "arithmetic", "12"),
        ("What is the difference between 50 and 8?", "arithmetic", "42"),
        ("What is the product of 6 and 9?", "arithmetic", "54"),
        ("Reverse the word 'apple'.", "reverse_word", "elppa"),
        ('Spell "tiger" backwards.', "reverse_word", "regit"),
        ("Sort the letters of 'house' alphabetically.", "sort_letters", "ehosu"),
        ("How many times does the letter 'r' appear in 'strawberry'?", "count_char", "3"),
        ("Count the occurrences of 'z' in 'banana'.", "count_char", "0"),
        ("Which is larger, 3.5 or 3.45?", "compare_numbers", "3.5"),
        ("Of 17 and 71, which one is smaller?", "compare_numbers", "17"),
        ("What is the third word in 'red fox jumps high'?", "nth_word", "jumps"),
        ("In the sentence 'a b c d', what is word number 4?", "nth_word", "d"),
        ("Name the 2nd word of 'cat dog bird'.", "nth_word", "dog"),
        ("How many centimeters are in 3 meters?", "unit_conversion", "300"),
        ("Convert 2.5 kilometers to meters.", "unit_conversion", "2500"),
        ("7000 millimeters is how many meters?", "unit_conversion", "7"),
        ("Convert 4 feet to inches.", "unit_conversion", "48"),
    ],
)
def test_literal_prompts_are_identified_and_solved(prompt: str, skill: str, answer: str) -> None:
    assert identify_skill(prompt) == skill
    assert expected_answer(prompt) == answer


@pytest.mark.parametrize(
    "prompt",
    [
        "Write a poem about the sea.",
        "What is the meaning of life?",
        "Which is larger and which is smaller, 3 or 4?",  # both directions: ambiguous
        "Reverse and sort the letters of 'apple'.",  # two skills at once
        "Convert 3 meters to kilograms.",  # different dimensions
        "What is the 9th word in 'one two three'?",  # position past the end
        "",
    ],
)
def test_non_skill_prompts_are_not_checkable(prompt: str) -> None:
    assert identify_skill(prompt) is None
    assert expected_answer(prompt) is None
    assert check_answer(prompt, "Answer: 42") is None


@pytest.mark.parametrize(
    ("reply", "committed"),
    [
        ("Answer: 42", "42"),
        ("Let me think.\nIt is easy.\nAnswer: 42\n\n", "42"),
        ("answer: elppa", "elppa"),
        ("Final answer: 7", "7"),
        ("**Answer:** 12", "12"),
        ("Answer: **12**", "12"),
        ("Answer: `olleh`.", "olleh"),
        ("Answer: 1\nAnswer: 2", "2"),  # the last answer line counts
        ("Answer: 5\nWait, it is 6.", None),  # prose after the answer: uncommitted
        ("The answer is 42.", "42"),  # a natural form (tested in test_final_answer.py)
        ("Answer:", None),
        ("", None),
        ("Réponse d'abord… Answer: 3", None),  # not at the start of a line
        ("Voilà, c'est ça.\nAnswer: 3", "3"),
    ],
)
def test_extract_final_answer_literal_cases(reply: str, committed: str | None) -> None:
    assert extract_final_answer(reply) == committed


@pytest.mark.parametrize(
    ("prompt", "reply", "right"),
    [
        ("Convert 2.5 kilometers to meters.", "Answer: 2500.0", True),
        ("What is 999 + 999?", "Answer: 1,998", True),
        ("What is 2 + 2?", "Answer: 4 apples", False),
        ("What is 2 + 2?", "Answer: four", False),
        ("Reverse the word 'apple'.", "Answer: ELPPA", True),
        ("Sort the letters of 'house' alphabetically.", "Answer: e h o s u", True),
        ("Which is larger, 3.5 or 3.45?", "Answer: 3.50", True),
        ("Which is larger, 3.5 or 3.45?", "Answer: 3.45", False),
        ("What is 2 + 2?", "It is four, I think.", False),  # no committed answer: wrong
    ],
)
def test_check_answer_literal_cases(prompt: str, reply: str, right: bool) -> None:
    assert check_answer(prompt, reply) is right


def test_terse_render_is_only_the_answer_line() -> None:
    assert render_answer("elppa") == "Answer: elppa"
    assert render_answer("7", "normal").endswith("\nAnswer: 7")
    verbose = render_answer("7", "verbose", random.Random(3))
    assert len(verbose) > len(render_answer("7", "normal")) and verbose.endswith("Answer: 7")


def test_render_rejects_unknown_verbosity() -> None:
    with pytest.raises(ValueError, match="verbosity"):
        render_answer("1", "chatty")


def test_generators_and_checkers_agree_on_thousands_of_tasks() -> None:
    tasks = generate_tasks(3500, seed=11)
    rng = random.Random(0)
    assert {t.skill for t in tasks} == set(SKILLS)
    for task in tasks:
        assert identify_skill(task.prompt) == task.skill, task
        assert expected_answer(task.prompt) == task.answer, task
        for verbosity in ("terse", "normal", "verbose"):
            assert check_answer(task.prompt, render_answer(task.answer, verbosity, rng)), task
        wrong = wrong_answer(task, rng)
        assert check_answer(task.prompt, render_answer(wrong, "normal", rng)) is False, (
            task,
            wrong,
        )
