"""The seeded task generators: determinism, variety, difficulty and wrong answers."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from datasketch import MinHash, MinHashLSH

from flywheel.evaluators.skills import SKILLS, check_answer, render_answer
from flywheel.sandbox.skills import (
    MAX_PROMPT_WORDS,
    SkillTask,
    generate_tasks,
    systematic_slip,
    wrong_answer,
)


def test_same_seed_same_tasks_and_prefix_does_not_depend_on_n() -> None:
    assert generate_tasks(200, seed=5) == generate_tasks(200, seed=5)
    assert generate_tasks(300, seed=5)[:200] == generate_tasks(200, seed=5)
    assert generate_tasks(200, seed=5) != generate_tasks(200, seed=6)


def test_skills_are_balanced_and_restrictable() -> None:
    counts = Counter(t.skill for t in generate_tasks(700, seed=0))
    assert counts == {skill: 100 for skill in SKILLS}
    only = generate_tasks(50, seed=0, skills=["reverse_word", "nth_word"])
    assert {t.skill for t in only} == {"reverse_word", "nth_word"}


def test_difficulty_is_respected_and_scales_operands() -> None:
    for level in (1, 2, 3):
        assert {t.difficulty for t in generate_tasks(70, seed=1, difficulty=level)} == {level}
    easy = generate_tasks(100, seed=2, skills=["reverse_word"], difficulty=1)
    hard = generate_tasks(100, seed=2, skills=["reverse_word"], difficulty=3)
    assert max(len(t.answer) for t in easy) < min(len(t.answer) for t in hard)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown skill"):
        generate_tasks(3, seed=0, skills=["poetry"])
    with pytest.raises(ValueError, match="difficulty"):
        generate_tasks(3, seed=0, difficulty=4)


def test_pool_of_3000_is_distinct_short_and_mostly_not_near_duplicates() -> None:
    tasks = generate_tasks(3000, seed=0)
    assert len({t.prompt for t in tasks}) == 3000
    assert max(len(t.prompt.split()) for t in tasks) <= MAX_PROMPT_WORDS
    assert max(len(t.answer) for t in tasks) <= 12
    lsh = MinHashLSH(threshold=0.8, num_perm=64)
    near_duplicates = 0
    for i, task in enumerate(tasks):
        words = task.prompt.lower().split()
        signature = MinHash(num_perm=64)
        for j in range(max(1, len(words) - 2)):
            signature.update(" ".join(words[j : j + 3]).encode())
        if lsh.query(signature):
            near_duplicates += 1
        else:
            lsh.insert(str(i), signature)
    assert near_duplicates < 0.05 * len(tasks)


def test_wrong_answer_accepts_a_prompt_string_and_is_wrong() -> None:
    rng = random.Random(0)
    for task in generate_tasks(700, seed=3):
        wrong = wrong_answer(task.prompt, rng)
        assert wrong != task.answer
        assert check_answer(task.prompt, render_answer(wrong)) is False


def test_wrong_answer_is_plausible() -> None:
    rng = random.Random(1)
    compare = SkillTask("compare_numbers", "Which is larger, 3.5 or 3.45?", "3.5", 3)
    assert wrong_answer(compare, rng) == "3.45"
    nth = SkillTask("nth_word", "What is the 2nd word in 'red fox jumps'?", "fox", 1)
    assert wrong_answer(nth, rng) in {"red", "jumps"}
    assert abs(int(wrong_answer("What is 40 + 2?", rng)) - 42) <= 10
    assert wrong_answer("Tell me a joke.", rng) == "I am not sure"


def test_systematic_slip_is_always_wrong_and_the_same_for_a_task() -> None:
    tasks = generate_tasks(2100, seed=11)
    for task in tasks:
        slip = systematic_slip(task)
        assert slip == systematic_slip(task)
        assert not check_answer(task.prompt, render_answer(slip)), (task, slip)
