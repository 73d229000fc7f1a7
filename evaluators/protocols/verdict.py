"""The record every judge protocol's parser returns, and what the parsers share.

`Verdict`: one judged game by position (the answer shown first or second), each position's
1-10 score where the reply gives and keeps them, and the label strength where the protocol
gives one. Parsers never raise and never guess: a reply without a usable verdict is a
`Verdict` with parse_ok False and the reason in `error`.

Shared by the parsers: `final_text` (the part of a reply that holds its final answer),
`scores_problem` (why a pair of scores cannot be kept beside a verdict) and the line-edge
regex fragments of verdict and score lines.

Pure: standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

Winner = Literal["first", "second", "tie"]

SCORE_MIN, SCORE_MAX = 1.0, 10.0
TIE_MAX_SCORE_DIFF = 1.0
"""A tie verdict's two scores may differ by at most this much and still be kept."""

LINE_START = r"^[\s>*#_\-•]*"
"""Regex: what may open a verdict or score line (markdown bullets, quotes, emphasis)."""
LINE_END = r"[\s*_.!]*$"
"""Regex: what may close a verdict or score line."""

_THINK_BLOCK_RE = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_WIDE_BRACKETS = str.maketrans({"【": "[", "】": "]", "〔": "[", "〕": "]", "〖": "[", "〗": "]"})


@dataclass(frozen=True)
class Verdict:
    """One judged game, parsed: who won by position, and each position's 1-10 score.

    parse_ok False: no usable verdict (winner and scores None, reason in `error`).
    parse_ok True with `error` set: the verdict stands but the scores were dropped.
    `strength`: how strongly a five-label verdict prefers the winner (2 for `A>>B`, 1 for
    `A>B`, 0 for `A=B`); None when the label does not say (`[[A]]`).
    """

    parse_ok: bool
    winner: Winner | None
    score_first: float | None
    score_second: float | None
    error: str | None
    strength: float | None = None


def unparsed(reason: str) -> Verdict:
    """A verdict that did not parse, saying why."""
    return Verdict(parse_ok=False, winner=None, score_first=None, score_second=None, error=reason)


def final_text(text: str) -> str:
    """The part of a reply that holds its final answer: `<think>...</think>` blocks removed
    (an unclosed `<think>` drafts to the end; a lone `</think>` ends a draft), full-width
    forms folded (NFKC: `：` `［` `］` `（` `）` full-width digits; `【】` become `[]`)."""
    text = _THINK_BLOCK_RE.sub("", text)
    lowered = text.lower()
    if "</think>" in lowered:
        text = text[lowered.rindex("</think>") + len("</think>") :]
    elif "<think>" in lowered:
        text = text[: lowered.index("<think>")]
    return unicodedata.normalize("NFKC", text).translate(_WIDE_BRACKETS)


def scores_problem(winner: Winner, first: float, second: float) -> str | None:
    """Why two scores cannot stand beside a verdict (out of 1-10, or the winner's score below
    the loser's, or a tie's scores more than TIE_MAX_SCORE_DIFF apart); None when they can."""
    for score in (first, second):
        if not SCORE_MIN <= score <= SCORE_MAX:
            return f"scores dropped: {first:g} {second:g} out of range 1-10"
    contradicts = {
        "first": first < second,
        "second": second < first,
        "tie": abs(first - second) > TIE_MAX_SCORE_DIFF,
    }[winner]
    if contradicts:
        return f"scores dropped: {first:g} {second:g} contradict verdict {winner}"
    return None
