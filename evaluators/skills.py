"""Checkers for the sandbox's verifiable skills: pure functions of the prompt and reply text.

A skill prompt carries everything needed to compute its answer, so `expected_answer`
parses the prompt text alone (no side channel from the generator in `sandbox/skills.py`).

Families (`SKILLS`), what their prompts contain, and the expected answer:

| skill | the prompt contains | expected answer |
| --- | --- | --- |
| arithmetic | two integers and `+ - * x plus minus times`, or "sum/product/difference of A and B", "add A and B", "subtract B from A", "multiply A by B" | the integer result |
| reverse_word | "reverse" or "backwards" and one quoted word | the word reversed |
| sort_letters | "alphabetical" or "sort" and one quoted word | its letters sorted a-z |
| count_char | "how many"/"count"/"occur"/"appear", a quoted single letter and a quoted word | occurrences (case-insensitive) |
| compare_numbers | "larger/bigger/greater/higher" or "smaller/less/lower" and exactly two numbers | the larger (smaller) one |
| nth_word | an ordinal ("3rd", "third", "word number 3") and a quoted sentence | that word of the sentence |
| unit_conversion | one number directly followed by a unit name, and a second unit name | the number in the second unit |

Quoted means between `'...'` or `"..."` (curly quotes too). Prompts that match no family,
or match but are inconsistent (e.g. both "larger" and "smaller"), are not checkable: the
functions return None, never a guess.

Reply format (`extract_final_answer`, in `final_answer.py`): any prose, then a final line
`Answer: X`; a reply without an answer line is read by the natural form its last line ends in
("The answer is 7.", "3 + 4 = 7.", `\\boxed{7}`, a bare "7"), never by a guess.

Comparison (`check_answer`): numeric skills need X to be a single number (thousands commas
allowed) equal to the expected value as a decimal (`2500` == `2500.0`); word skills compare
case-insensitively, and `sort_letters` ignores spaces, commas and hyphens between letters.
A reply without a committed answer to a checkable prompt is wrong (False), not None.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation

from flywheel.evaluators.final_answer import ANSWER_LINE_RE, extract_final_answer

SKILLS: tuple[str, ...] = (
    "arithmetic",
    "reverse_word",
    "sort_letters",
    "count_char",
    "compare_numbers",
    "nth_word",
    "unit_conversion",
)
NUMERIC_SKILLS: frozenset[str] = frozenset(
    {"arithmetic", "count_char", "compare_numbers", "unit_conversion"}
)

# A unit's size in its dimension's base unit; exact decimals so 1 foot / 1 inch == 12.
UNIT_SIZES: dict[str, tuple[str, Decimal]] = {
    "millimeter": ("length", Decimal("0.001")),
    "centimeter": ("length", Decimal("0.01")),
    "meter": ("length", Decimal("1")),
    "kilometer": ("length", Decimal("1000")),
    "inch": ("length", Decimal("0.0254")),
    "foot": ("length", Decimal("0.3048")),
    "yard": ("length", Decimal("0.9144")),
    "gram": ("mass", Decimal("1")),
    "kilogram": ("mass", Decimal("1000")),
    "second": ("time", Decimal("1")),
    "minute": ("time", Decimal("60")),
    "hour": ("time", Decimal("3600")),
    "day": ("time", Decimal("86400")),
    "week": ("time", Decimal("604800")),
    "milliliter": ("volume", Decimal("0.001")),
    "liter": ("volume", Decimal("1")),
}
_UNIT_FORMS: dict[str, str] = {}
for _unit in UNIT_SIZES:
    _UNIT_FORMS[_unit] = _unit
    _UNIT_FORMS[_unit + "s"] = _unit
    if _unit.endswith("meter") or _unit.endswith("liter"):
        _british = _unit[:-2] + "re"  # metre, litre
        _UNIT_FORMS[_british] = _unit
        _UNIT_FORMS[_british + "s"] = _unit
_UNIT_FORMS.update({"inches": "inch", "feet": "foot"})
_UNIT_WORD = "|".join(sorted(_UNIT_FORMS, key=len, reverse=True))
_UNIT_RE = re.compile(rf"\b({_UNIT_WORD})\b", re.IGNORECASE)
_NUMBER = r"-?\d+(?:\.\d+)?"
_NUMBER_RE = re.compile(rf"(?<![\w.]){_NUMBER}(?![\w]|\.\d)")
_AMOUNT_RE = re.compile(rf"(?<![\w.])({_NUMBER})\s+({_UNIT_WORD})\b", re.IGNORECASE)
_QUOTED_RE = re.compile(
    r"['\"\u2018\u2019\u201c\u201d]([^'\"\u2018\u2019\u201c\u201d]+)['\"\u2018\u2019\u201c\u201d]"
)

ORDINAL_WORDS: dict[str, int] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
}
_ORDINAL_RE = re.compile(
    r"\b(?:(\d+)(?:st|nd|rd|th)|(" + "|".join(ORDINAL_WORDS) + r"))\b|\bword (?:number|#)\s*(\d+)",
    re.IGNORECASE,
)
_LARGER_RE = re.compile(r"\b(larger|bigger|greater|higher)\b", re.IGNORECASE)
_SMALLER_RE = re.compile(r"\b(smaller|less|lower)\b", re.IGNORECASE)
_COUNT_RE = re.compile(r"\b(how many|count|occur\w*|appear\w*|number of times)\b", re.IGNORECASE)
_REVERSE_RE = re.compile(r"\b(revers\w*|backwards?)\b", re.IGNORECASE)
_SORT_RE = re.compile(r"\b(alphabetical\w*|sort\w*)\b", re.IGNORECASE)

_INT = r"(-?\d+)"
_ARITHMETIC_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"{_INT}\s*(\+|plus)\s*{_INT}", re.IGNORECASE), "+"),
    (re.compile(rf"{_INT}\s*(-|\u2212|minus)\s*{_INT}", re.IGNORECASE), "-"),
    (re.compile(rf"{_INT}\s*(\*|\u00d7|x|times|multiplied by)\s*{_INT}", re.IGNORECASE), "*"),
    (re.compile(rf"\bsum of {_INT} and {_INT}", re.IGNORECASE), "+"),
    (re.compile(rf"\badd {_INT} (and|to) {_INT}", re.IGNORECASE), "+"),
    (re.compile(rf"\bproduct of {_INT} and {_INT}", re.IGNORECASE), "*"),
    (re.compile(rf"\bmultiply {_INT} (by|and) {_INT}", re.IGNORECASE), "*"),
    (re.compile(rf"\bdifference between {_INT} and {_INT}", re.IGNORECASE), "-"),
    (re.compile(rf"\bsubtract {_INT} from {_INT}", re.IGNORECASE), "from"),
)

_NUMERIC_ANSWER_RE = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_LETTER_SEPARATORS_RE = re.compile(r"[\s,\-]+")


def format_number(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 2500, 2.5, -3."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def quoted_strings(prompt: str) -> list[str]:
    """The texts between quotes in a prompt, in order."""
    return [m.group(1).strip() for m in _QUOTED_RE.finditer(prompt)]


def _unquoted(prompt: str) -> str:
    return _QUOTED_RE.sub(" ", prompt)


def _single_quoted_word(prompt: str) -> str | None:
    """The one quoted single word of the prompt, or None when there is not exactly one."""
    words = [q for q in quoted_strings(prompt) if re.fullmatch(r"[A-Za-z]+", q)]
    return words[0] if len(words) == 1 and len(quoted_strings(prompt)) == 1 else None


def _count_char_parts(prompt: str) -> tuple[str, str] | None:
    quoted = quoted_strings(prompt)
    letters = [q for q in quoted if re.fullmatch(r"[A-Za-z]", q)]
    words = [q for q in quoted if re.fullmatch(r"[A-Za-z]{2,}", q)]
    if len(quoted) != 2 or len(letters) != 1 or len(words) != 1:
        return None
    if not _COUNT_RE.search(_unquoted(prompt)):
        return None
    return letters[0], words[0]


def _nth_word_parts(prompt: str) -> tuple[int, list[str]] | None:
    quoted = [q for q in quoted_strings(prompt) if len(q.split()) >= 2]
    if len(quoted) != 1 or len(quoted_strings(prompt)) != 1:
        return None
    ordinals = list(_ORDINAL_RE.finditer(_unquoted(prompt)))
    if len(ordinals) != 1:
        return None
    m = ordinals[0]
    if m.group(2):
        position = ORDINAL_WORDS[m.group(2).lower()]
    else:
        position = int(m.group(1) or m.group(3))
    words = [w.strip(".,;:!?") for w in quoted[0].split()]
    if not 1 <= position <= len(words):
        return None
    return position, words


def _compare_parts(prompt: str) -> tuple[str, tuple[str, str]] | None:
    text = _unquoted(prompt)
    larger, smaller = bool(_LARGER_RE.search(text)), bool(_SMALLER_RE.search(text))
    if larger == smaller or " or " not in text.lower() and " and " not in text.lower():
        return None
    numbers = _NUMBER_RE.findall(text)
    if len(numbers) != 2 or Decimal(numbers[0]) == Decimal(numbers[1]):
        return None
    return ("larger" if larger else "smaller"), (numbers[0], numbers[1])


def _unit_parts(prompt: str) -> tuple[Decimal, str, str] | None:
    text = _unquoted(prompt)
    amounts = list(_AMOUNT_RE.finditer(text))
    units = [_UNIT_FORMS[u.lower()] for u in _UNIT_RE.findall(text)]
    if len(amounts) != 1 or len(units) != 2 or len(_NUMBER_RE.findall(text)) != 1:
        return None
    source = _UNIT_FORMS[amounts[0].group(2).lower()]
    others = [u for u in units if u != source]
    if len(others) != 1 or UNIT_SIZES[others[0]][0] != UNIT_SIZES[source][0]:
        return None
    return Decimal(amounts[0].group(1)), source, others[0]


def _arithmetic_result(prompt: str) -> int | None:
    text = _unquoted(prompt)
    if len(_NUMBER_RE.findall(text)) != 2:
        return None
    for pattern, op in _ARITHMETIC_PATTERNS:
        m = pattern.search(text)
        if m is None:
            continue
        a, b = int(m.group(1)), int(m.group(m.lastindex or 0))
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return b - a  # "subtract A from B"
    return None


def identify_skill(prompt: str) -> str | None:
    """The skill family of a sandbox prompt, or None when it is not one (see module doc)."""
    text = _unquoted(prompt)
    if _count_char_parts(prompt) is not None:
        return "count_char"
    if _nth_word_parts(prompt) is not None:
        return "nth_word"
    word = _single_quoted_word(prompt)
    if word is not None:
        reverse, sort = bool(_REVERSE_RE.search(text)), bool(_SORT_RE.search(text))
        if reverse and not sort:
            return "reverse_word"
        if sort and not reverse:
            return "sort_letters"
        return None
    if quoted_strings(prompt):
        return None
    if _compare_parts(prompt) is not None:
        return "compare_numbers"
    if _unit_parts(prompt) is not None:
        return "unit_conversion"
    if _arithmetic_result(prompt) is not None:
        return "arithmetic"
    return None


def expected_answer(prompt: str) -> str | None:
    """The right answer to a sandbox skill prompt, computed from its text; None if not one."""
    skill = identify_skill(prompt)
    if skill == "count_char":
        letter, word = _count_char_parts(prompt) or ("", "")
        return str(word.lower().count(letter.lower()))
    if skill == "nth_word":
        position, words = _nth_word_parts(prompt) or (1, [""])
        return words[position - 1]
    if skill == "reverse_word":
        return (_single_quoted_word(prompt) or "")[::-1]
    if skill == "sort_letters":
        return "".join(sorted((_single_quoted_word(prompt) or "").lower()))
    if skill == "compare_numbers":
        direction, (a, b) = _compare_parts(prompt) or ("larger", ("0", "0"))
        pick_first = (Decimal(a) > Decimal(b)) == (direction == "larger")
        return a if pick_first else b
    if skill == "unit_conversion":
        amount, source, target = _unit_parts(prompt) or (Decimal(0), "meter", "meter")
        return format_number(amount * UNIT_SIZES[source][1] / UNIT_SIZES[target][1])
    if skill == "arithmetic":
        return str(_arithmetic_result(prompt))
    return None


def _parse_number(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUMERIC_ANSWER_RE.fullmatch(text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def answers_match(skill: str, expected: str, given: str) -> bool:
    """Whether a committed answer equals the expected one under the skill's comparison."""
    if skill in NUMERIC_SKILLS:
        value = _parse_number(given)
        return value is not None and value == Decimal(expected)
    if skill == "sort_letters":
        given = _LETTER_SEPARATORS_RE.sub("", given)
    return given.strip().casefold() == expected.casefold()


def check_answer(prompt: str, answer_text: str) -> bool | None:
    """True/False: whether the reply commits to the right answer; None: prompt not checkable."""
    skill = identify_skill(prompt)
    expected = expected_answer(prompt)
    if skill is None or expected is None:
        return None
    given = extract_final_answer(answer_text)
    return given is not None and answers_match(skill, expected, given)


_PROSE: dict[str, tuple[str, ...]] = {
    "normal": (
        "Here is the result.",
        "Let me work through this.",
        "Sure, I can help with that.",
        "I worked it out step by step.",
        "That one is straightforward.",
        "Good question; here is what I get.",
    ),
    "verbose": (
        "Thanks for the question. I read the task carefully and worked it out step by step, "
        "checking each part before committing.",
        "Let me think about this carefully. First I identified exactly what is asked, then I "
        "computed it and double-checked the result.",
        "Happy to help with this one. I broke the problem into small steps, solved each of "
        "them, and verified the final result once more.",
        "This is a nice small task. I looked at the details of the question, did the work, "
        "and reviewed it to make sure nothing was missed.",
    ),
}


def render_answer(answer: str, verbosity: str = "terse", rng: random.Random | None = None) -> str:
    """A well-formed reply committing to `answer`.

    "terse" is exactly `Answer: X`; "normal" adds one sentence and "verbose" two or three
    sentences of prose before that final line (the phrasing drawn with `rng`, the first
    phrasing when rng is None).
    """
    if verbosity == "terse":
        return f"Answer: {answer}"
    if verbosity not in _PROSE:
        raise ValueError(f"verbosity must be terse, normal or verbose, got {verbosity!r}")
    phrasings = _PROSE[verbosity]
    prose = phrasings[rng.randrange(len(phrasings))] if rng is not None else phrasings[0]
    if verbosity == "verbose":
        prose += f" The final answer is {answer}."
    return f"{prose}\nAnswer: {answer}"


def replace_final_answer(reply: str, answer: str) -> str:
    """`reply` committing to `answer` instead, in its own format: the value of its last answer
    line is replaced (its prefix, such as `**Answer:**`, and the prose before it kept; text
    after it dropped); a reply without an answer line gets `Answer: X` as its last line."""
    lines = reply.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        m = ANSWER_LINE_RE.match(lines[i])
        if m is not None:
            prefix = lines[i][: m.start(1)].rstrip()
            return "\n".join([*lines[:i], f"{prefix} {answer}"])
    prose = "\n".join(lines).strip()
    return f"{prose}\nAnswer: {answer}" if prose else f"Answer: {answer}"
