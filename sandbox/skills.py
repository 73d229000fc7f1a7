"""Seeded generators of the sandbox's verifiable skill tasks, and plausible wrong answers.

Every prompt is checkable by `evaluators.skills` from its text alone: `SkillTask.answer`
always equals `expected_answer(task.prompt)` (tested on thousands of tasks).

Variety: each family has several phrasings, an optional lead-in and an optional closing
sentence drawn from small neutral lists, and words drawn from a few hundred English words,
so a few thousand prompts are almost all distinct and few are near-duplicates on word
3-shingles. The task part stays under ~25 words; answers are one number or one short word.

The answer format is stated: every prompt ends with one of `FORMAT_INSTRUCTIONS`, the way
public verifiable benchmarks say how to answer (GSM8K's "The final answer is", MATH's
boxed answer, MMLU-Pro's "the answer is (X)"), so a pretrained chat model is measured for
what it knows, not for guessing a format nobody told it. The instructions avoid every word
and symbol the checkers read (quotes, numbers, units, ordinals, comparison words).

Difficulty 1-3 scales the operands: digits for arithmetic, word length for the word
skills, sentence length for nth_word, closeness/decimals for compare_numbers, and the
direction and decimals of unit conversions.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from flywheel.evaluators.skills import (
    SKILLS,
    answers_match,
    expected_answer,
    format_number,
    identify_skill,
    quoted_strings,
)

DIFFICULTIES: tuple[int, ...] = (1, 2, 3)
_MAX_DRAWS_PER_TASK = 50
MAX_TASK_WORDS = 24  # lead-in, question and closing; the format instruction comes on top

FORMAT_INSTRUCTIONS: tuple[str, ...] = (
    "End your reply with a line of the form Answer: followed by the result.",
    "Give the final result on the last line, after Answer:",
    "Finish with the line Answer: and then your result.",
    "Put your final answer on its own line, starting with Answer:",
)
MAX_PROMPT_WORDS = MAX_TASK_WORDS + max(len(text.split()) for text in FORMAT_INSTRUCTIONS)

WORDS: tuple[str, ...] = tuple(
    """
    ant ape arm art ash bag bat bed bee box bus cab cap car cat cow cup dog ear egg elf
    fan fig fox fur gem gum hat hen ice ink jam jar jet key kit lab leg lip map mat mop
    mud net nut oak owl pan pen pig pin pot rat rug saw sea sky sun tea toy van web yak
    bark bean bear bell bird boat bone book cake card coat corn crab desk door drum duck
    farm fish flag fork frog gate goat gold hand harp hill horn iron jump kite lamp leaf
    lion lock milk moon nest note park pear pine plum rain ring road rock rose salt ship
    shoe silk snow soap sock star tent tree wind wolf wood yarn
    apple beach bread brick brush candy chair chalk cloud clown coral crown dance eagle
    fairy flame flute forest ghost glove grape grass honey horse house juice knife lemon
    magic mango maple metal mouse music night ocean olive onion otter paint panda paper
    peach piano pizza plane plant queen radio river robot salad sheep shelf smile snake
    spoon stone storm sugar table tiger toast torch towel train truck water whale zebra
    almond anchor animal autumn banana basket bottle bridge bubble butter button camera
    candle carpet castle cheese cherry circle cookie cotton dragon engine falcon finger
    flower garden ginger guitar hammer helmet island jacket jungle kitten ladder lizard
    marble meadow mirror monkey needle orange oyster parrot pencil pepper pillow planet
    pocket puzzle rabbit ribbon rocket saddle silver spider spring sunset tomato turtle
    violin walnut window winter wizard yellow
    blanket cabinet capital cartoon chicken compass concert diamond dolphin emerald
    fiction freedom gallery harvest horizon journey kitchen lantern leopard library
    machine mansion monster morning mustard network octopus orchard painter panther
    pelican penguin picture pilgrim pumpkin pyramid rainbow sailboat science scooter
    shadow sparrow station thunder tornado trumpet unicorn vampire village volcano
    weather whisper
    backpack blizzard calendar cardinal champion chemical dinosaur elephant envelope
    festival firework flamingo football frontier goldfish hedgehog hospital kangaroo
    magazine mountain mushroom notebook ornament painting panorama peacock pineapple
    platypus question raincoat sandwich scorpion skeleton squirrel sunshine tortoise
    treasure umbrella universe vacation waterfall
    """.split()
)
_WORDS_BY_LENGTH: dict[int, tuple[str, ...]] = {
    1: tuple(w for w in WORDS if 3 <= len(w) <= 4),
    2: tuple(w for w in WORDS if 5 <= len(w) <= 6),
    3: tuple(w for w in WORDS if 7 <= len(w) <= 10),
}

LEAD_INS: tuple[str, ...] = (
    "Quick question:",
    "Here is a small puzzle.",
    "Please help me with this.",
    "Try this one.",
    "I need help:",
    "Homework check:",
    "A simple task for you.",
    "Be careful here.",
    "Practice problem:",
    "My friend asked me this.",
    "Warm-up exercise:",
    "Test time:",
)
CLOSINGS: tuple[str, ...] = (
    "Reply briefly.",
    "Keep it short.",
    "Just give the result.",
    "End with the final answer.",
    "No need to explain much.",
    "Thanks!",
    "Be precise.",
    "Show only the result at the end.",
    "Please double-check.",
    "Make it quick.",
)


@dataclass(frozen=True)
class SkillTask:
    """One generated prompt with its right answer (one row of the sandbox prompt pool)."""

    skill: str
    prompt: str
    answer: str
    difficulty: int


def _quote(text: str, rng: random.Random) -> str:
    return f"'{text}'" if rng.random() < 0.5 else f'"{text}"'


def _dress(core: str, rng: random.Random) -> str:
    """The core question with an optional lead-in and an optional closing sentence, then the
    answer format."""
    lead_in = rng.choice(LEAD_INS) if rng.random() < 0.6 else ""
    closing = rng.choice(CLOSINGS) if rng.random() < 0.5 else ""
    if len(f"{lead_in} {core} {closing}".split()) > MAX_TASK_WORDS:
        lead_in = closing = ""
    instruction = rng.choice(FORMAT_INSTRUCTIONS)
    return " ".join(part for part in (lead_in, core, closing, instruction) if part)


def _arithmetic(rng: random.Random, difficulty: int) -> str:
    op = rng.choice("+-*")
    if op == "*":
        ranges = {1: (2, 9, 2, 9), 2: (10, 99, 2, 9), 3: (10, 99, 10, 99)}[difficulty]
    else:
        ranges = {1: (1, 9, 1, 9), 2: (10, 99, 10, 99), 3: (100, 999, 100, 999)}[difficulty]
    a, b = rng.randint(ranges[0], ranges[1]), rng.randint(ranges[2], ranges[3])
    if op == "-" and a < b:
        a, b = b, a
    symbol = {"+": rng.choice(["+", "plus"]), "-": rng.choice(["-", "minus"])}.get(op)
    symbol = symbol or rng.choice(["*", "x", "times"])
    templates = [
        f"What is {a} {symbol} {b}?",
        f"Compute {a} {symbol} {b}.",
        f"Calculate {a} {symbol} {b}.",
        f"Work out {a} {symbol} {b} in your head.",
    ]
    templates += {
        "+": [f"What is the sum of {a} and {b}?", f"Add {a} and {b}.", f"Add {b} to {a}."],
        "-": [f"Subtract {b} from {a}.", f"What is the difference between {a} and {b}?"],
        "*": [f"What is the product of {a} and {b}?", f"Multiply {a} by {b}."],
    }[op]
    return rng.choice(templates)


def _reverse_word(rng: random.Random, difficulty: int) -> str:
    word = _pick_word(rng, difficulty, lambda w: w != w[::-1])
    q = _quote(word, rng)
    return rng.choice(
        [
            f"Reverse the word {q}.",
            f"Spell {q} backwards.",
            f"Write the word {q} in reverse order.",
            f"What is {q} spelled backwards?",
            f"Give me {q} with its letters reversed.",
            f"Can you write {q} backward, letter by letter?",
        ]
    )


def _sort_letters(rng: random.Random, difficulty: int) -> str:
    word = _pick_word(rng, difficulty, lambda w: "".join(sorted(w)) != w)
    q = _quote(word, rng)
    return rng.choice(
        [
            f"Sort the letters of {q} alphabetically.",
            f"Arrange the letters in {q} in alphabetical order.",
            f"Put the letters of the word {q} in alphabetical order.",
            f"What do you get when you sort the letters of {q}?",
            f"Rewrite {q} with its letters sorted from a to z.",
        ]
    )


def _count_char(rng: random.Random, difficulty: int) -> str:
    word = _pick_word(rng, difficulty, lambda w: True)
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    c, q = _quote(letter, rng), _quote(word, rng)
    return rng.choice(
        [
            f"How many times does the letter {c} appear in {q}?",
            f"Count how many {c} characters are in the word {q}.",
            f"In the word {q}, how many times does {c} occur?",
            f"How many {c} letters does {q} contain?",
            f"Count the occurrences of {c} in {q}.",
        ]
    )


def _compare_numbers(rng: random.Random, difficulty: int) -> str:
    if difficulty == 1:
        a, b = rng.sample(range(1, 100), 2)
        x, y = str(a), str(b)
    elif difficulty == 2:
        a = rng.randint(100, 9999)
        b = a + rng.choice([-1, 1]) * rng.randint(1, 30)
        x, y = str(a), str(b)
    else:  # decimals with different numbers of places: 3.5 vs 3.45
        whole = rng.randint(0, 99)
        x = f"{whole}.{rng.randint(1, 9)}"
        y = f"{whole}.{rng.randint(10, 99)}"
        if Decimal(x) == Decimal(y):
            y = f"{whole}.{rng.randint(1, 9)}{rng.randint(1, 9)}"
        if rng.random() < 0.5:
            x, y = y, x
    if rng.random() < 0.7:
        adjective = rng.choice(["larger", "bigger", "greater"])
    else:
        adjective = rng.choice(["smaller", "lower"])
    return rng.choice(
        [
            f"Which is {adjective}, {x} or {y}?",
            f"Which number is {adjective}: {x} or {y}?",
            f"Of {x} and {y}, which one is {adjective}?",
            f"Tell me the {adjective} number: {x} or {y}.",
            f"Between {x} and {y}, which value is {adjective}?",
        ]
    )


_ORDINALS: tuple[str, ...] = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)


def _numeric_ordinal(n: int) -> str:
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n if n < 20 else n % 10, "th")
    return f"{n}{suffix}"


def _nth_word(rng: random.Random, difficulty: int) -> str:
    n_words = rng.randint(*{1: (3, 5), 2: (5, 7), 3: (7, 9)}[difficulty])
    words = rng.sample(WORDS, n_words)
    position = rng.randint(1, n_words)
    sentence = _quote(" ".join(words), rng)
    ordinal = _ORDINALS[position - 1] if rng.random() < 0.5 else _numeric_ordinal(position)
    return rng.choice(
        [
            f"What is the {ordinal} word in {sentence}?",
            f"Which word comes {ordinal} in the sentence {sentence}?",
            f"In the sentence {sentence}, what is word number {position}?",
            f"Give the {ordinal} word of this list: {sentence}.",
            f"Name the {ordinal} word of {sentence}.",
        ]
    )


# (larger unit, smaller unit): each ratio is an exact integer
_UNIT_PAIRS: tuple[tuple[str, str], ...] = (
    ("kilometer", "meter"),
    ("meter", "centimeter"),
    ("centimeter", "millimeter"),
    ("meter", "millimeter"),
    ("kilogram", "gram"),
    ("hour", "minute"),
    ("minute", "second"),
    ("day", "hour"),
    ("week", "day"),
    ("liter", "milliliter"),
    ("foot", "inch"),
    ("yard", "foot"),
)
_PLURALS = {"foot": "feet", "inch": "inches"}


def _plural(unit: str) -> str:
    return _PLURALS.get(unit, unit + "s")


def _unit_conversion(rng: random.Random, difficulty: int) -> str:
    big, small = rng.choice(_UNIT_PAIRS)
    if difficulty == 1:
        amount, source, target = str(rng.randint(2, 9)), big, small
    elif difficulty == 2:
        amount, source, target = str(rng.randint(10, 60)), big, small
    elif rng.random() < 0.5:  # a half of the larger unit
        amount, source, target = f"{rng.randint(1, 9)}.5", big, small
    else:  # back from the smaller unit to a whole number of the larger one
        check = expected_answer(f"How many {_plural(small)} are in 1 {big}?")
        amount = str(rng.randint(2, 9) * int(check or 1))
        source, target = small, big
    source_name = source if amount == "1" else _plural(source)
    target_name = _plural(target)
    return rng.choice(
        [
            f"How many {target_name} are in {amount} {source_name}?",
            f"Convert {amount} {source_name} to {target_name}.",
            f"Express {amount} {source_name} in {target_name}.",
            f"{amount} {source_name} is how many {target_name}?",
            f"If something lasts or measures {amount} {source_name}, what is that in {target_name}?",
        ]
    )


_GENERATORS = {
    "arithmetic": _arithmetic,
    "reverse_word": _reverse_word,
    "sort_letters": _sort_letters,
    "count_char": _count_char,
    "compare_numbers": _compare_numbers,
    "nth_word": _nth_word,
    "unit_conversion": _unit_conversion,
}


def _pick_word(rng: random.Random, difficulty: int, accept: Callable[[str], bool]) -> str:
    candidates = [w for w in _WORDS_BY_LENGTH[difficulty] if accept(w)]
    return rng.choice(candidates)


def generate_task(skill: str, rng: random.Random, difficulty: int) -> SkillTask:
    """One task of `skill` at `difficulty` (1-3), drawn with `rng`."""
    if skill not in _GENERATORS:
        raise ValueError(f"unknown skill {skill!r}; known skills: {', '.join(SKILLS)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
    prompt = _dress(_GENERATORS[skill](rng, difficulty), rng)
    answer = expected_answer(prompt)
    if answer is None or identify_skill(prompt) != skill:  # a generator bug, never expected
        raise AssertionError(f"generated prompt is not checkable as {skill}: {prompt!r}")
    return SkillTask(skill=skill, prompt=prompt, answer=answer, difficulty=difficulty)


def generate_tasks(
    n: int, seed: int, skills: Sequence[str] = SKILLS, difficulty: int | None = None
) -> list[SkillTask]:
    """`n` tasks with distinct prompts, skills taken in turn, deterministic under `seed`.

    Task i is drawn from its own generator seeded with (seed, i), so the first k tasks of
    `generate_tasks(n, seed)` do not depend on n. `difficulty=None` draws 1-3 uniformly.
    """
    if not skills:
        raise ValueError("skills must name at least one skill")
    tasks: list[SkillTask] = []
    seen: set[str] = set()
    for i in range(n):
        rng = random.Random(f"sandbox-skills:{seed}:{i}")
        skill = skills[i % len(skills)]
        for _ in range(_MAX_DRAWS_PER_TASK):
            level = difficulty if difficulty is not None else rng.choice(DIFFICULTIES)
            task = generate_task(skill, rng, level)
            if task.prompt not in seen:
                break
        seen.add(task.prompt)
        tasks.append(task)
    return tasks


def _wrong_candidates(skill: str, prompt: str, answer: str, rng: random.Random) -> list[str]:
    if skill in ("arithmetic", "count_char"):
        value = int(answer)
        deltas = [1, 2] if skill == "count_char" else [1, 2, 10, -1, -2, -10]
        return [str(max(0, value + d)) if skill == "count_char" else str(value + d) for d in deltas]
    if skill == "compare_numbers":
        return [n for n in re.findall(r"\d+(?:\.\d+)?", prompt) if n != answer]
    if skill == "unit_conversion":
        value = Decimal(answer)
        amount = re.findall(r"\d+(?:\.\d+)?", prompt)
        return [format_number(value * 10), format_number(value / 10), *amount]
    if skill == "nth_word":
        sentence = next(q for q in quoted_strings(prompt) if " " in q)
        return [w for w in sentence.split() if w.lower() != answer.lower()]
    letters = list(answer)
    swaps = []
    for i in range(len(letters) - 1):
        if letters[i] != letters[i + 1]:
            swapped = letters[:i] + [letters[i + 1], letters[i]] + letters[i + 2 :]
            swaps.append("".join(swapped))
    if skill == "reverse_word":
        return [answer[::-1], answer[:-1], *swaps]
    return [*swaps, answer + answer[-1]]  # sort_letters


def wrong_answer(task_or_prompt: SkillTask | str, rng: random.Random) -> str:
    """A plausible wrong answer: off by one or ten, the other number, a letter swap, ...

    For a prompt that is not a sandbox skill prompt, a generic non-answer ("I am not sure").
    """
    prompt = task_or_prompt.prompt if isinstance(task_or_prompt, SkillTask) else task_or_prompt
    skill, answer = identify_skill(prompt), expected_answer(prompt)
    if skill is None or answer is None:
        return "I am not sure"
    candidates = _wrong_candidates(skill, prompt, answer, rng)
    wrong = [c for c in dict.fromkeys(candidates) if c and not answers_match(skill, answer, c)]
    if not wrong:
        return f"{answer}0" if skill != "sort_letters" else answer[::-1] + "z"
    return rng.choice(wrong)


def systematic_slip(task: SkillTask) -> str:
    """The careless solver's slip on `task`: the right answer with its last character typed twice.

    Always wrong (`35` -> `355`, `enob` -> `enobb`, `0` -> `01`), and always the same for a task;
    a model that makes it has computed the right answer and only fails to stop.
    """
    stutter = task.answer + task.answer[-1]
    return task.answer + "1" if answers_match(task.skill, task.answer, stutter) else stutter
