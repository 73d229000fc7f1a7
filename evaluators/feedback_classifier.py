"""Reading the implicit-feedback classifier's reply: the category of a user's next turn, the
words it rests on and how sure the classifier is; and whether those words are really there.

The reply (prompt `implicit-feedback-v1`, `evaluators/feedback_prompts.py`) is one JSON object
`{"category": ..., "quote": ..., "confidence": ...}`, bare or in a ```json fence, after any
`<think>` block. `parse_classifier_reply` reads it like a judge's verdict, never guessing:

- category: repeat, correction, complaint, clarification, positive or none (any case; the
  paper's names are read too: `rephrase`, `repeat/rephrase`, `make aware with correction`,
  `make aware without correction`, `clarification request`, `ask for clarification`,
  `positive feedback`, `no feedback`); anything else is unparsed.
- confidence: a JSON number from 0 to 1; missing, text, or out of range (`90`): unparsed.
- quote: required (non-empty text) for every category but none; ignored for none.
- no object with a `category`, or objects naming different categories: unparsed.

`quote_in_turn` then checks that the quote occurs in the user's turn, compared after Unicode
folding (NFKC, curly quotes straight), case folding and collapsing whitespace, with the
quote's own surrounding quotation marks and spaces stripped; a label whose quote is not there
is dropped by the caller (`label_checked`), and counted.

Repeat, correction, complaint and clarification are negative feedback, positive is positive
(`LABEL_OF`); none is no feedback and no label.

Pure: standard library only.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

from flywheel.evaluators.json_objects import json_objects
from flywheel.evaluators.protocols.verdict import final_text

Category = Literal["repeat", "correction", "complaint", "clarification", "positive"]
CATEGORIES: tuple[Category, ...] = (
    "repeat",
    "correction",
    "complaint",
    "clarification",
    "positive",
)
NEGATIVE_CATEGORIES: tuple[Category, ...] = CATEGORIES[:4]
LABEL_OF: dict[Category, str] = {c: "negative" for c in NEGATIVE_CATEGORIES} | {
    "positive": "positive"
}
NO_FEEDBACK = "none"

_CATEGORY_NAMES: dict[str, Category | Literal["none"]] = {
    "repeat": "repeat",
    "rephrase": "repeat",
    "repeat/rephrase": "repeat",
    "repeat or rephrase": "repeat",
    "correction": "correction",
    "make aware with correction": "correction",
    "complaint": "complaint",
    "complaint without correction": "complaint",
    "make aware without correction": "complaint",
    "clarification": "clarification",
    "clarification request": "clarification",
    "ask for clarification": "clarification",
    "positive": "positive",
    "positive feedback": "positive",
    "none": "none",
    "no feedback": "none",
}
_QUOTE_MARKS = "\"'`“”‘’«»„"
_FOLD_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


@dataclass(frozen=True)
class FeedbackReading:
    """One classifier reply, read.

    parse_ok False: no usable reading (category, quote and confidence None; why in `error`).
    parse_ok True with category None: the classifier found no feedback (`none`).
    """

    parse_ok: bool
    category: Category | None
    quote: str | None
    confidence: float | None
    error: str | None = None

    @property
    def label(self) -> str | None:
        """positive | negative; None for no feedback or an unparsed reply."""
        return LABEL_OF[self.category] if self.category is not None else None


def unparsed_reading(reason: str) -> FeedbackReading:
    """A reply that could not be read, saying why."""
    return FeedbackReading(False, None, None, None, reason)


def category_of(value: object) -> Category | Literal["none"] | None:
    """A reply's category, read by its name (module doc); None for anything else."""
    if not isinstance(value, str):
        return None
    key = " ".join(value.strip().lower().replace("_", " ").replace("-", " ").split())
    return _CATEGORY_NAMES.get(key)


def _confidence(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def parse_classifier_reply(text: str) -> FeedbackReading:
    """Read a classifier reply by the rules of the module doc; never raises."""
    final = final_text(text) if isinstance(text, str) else ""
    objects = [o for o in json_objects(final) if "category" in o]
    if not objects:
        return unparsed_reading("no JSON object with a category")
    named = {str(o["category"]).strip().lower() for o in objects}
    if len({category_of(o["category"]) for o in objects}) > 1:
        return unparsed_reading(f"conflicting categories: {', '.join(sorted(named))}")
    reply = objects[-1]
    category = category_of(reply["category"])
    if category is None:
        return unparsed_reading(f"unknown category {reply['category']!r}")
    confidence = _confidence(reply.get("confidence"))
    if confidence is None:
        return unparsed_reading(
            f"confidence must be a number from 0 to 1 (got {reply.get('confidence')!r})"
        )
    if category == NO_FEEDBACK:
        return FeedbackReading(True, None, None, confidence)
    quote = reply.get("quote")
    if not isinstance(quote, str) or not quote.strip():
        return unparsed_reading(f"category {category} without a quote of the user's words")
    return FeedbackReading(True, category, quote.strip(), confidence)


def _folded(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_FOLD_QUOTES).casefold()
    return " ".join(text.split())


def quote_in_turn(quote: str, user_turn: str) -> bool:
    """Whether `quote` occurs in `user_turn` (module doc: folded case, whitespace and quote
    marks; its surrounding quotation marks stripped); an empty quote never does."""
    needle = _folded(quote).strip(_QUOTE_MARKS + " ")
    return bool(needle) and needle in _folded(user_turn)


def label_checked(reading: FeedbackReading, user_turn: str) -> FeedbackReading:
    """The reading with its label dropped (parse_ok kept, category None, `error` saying so)
    when its quote does not occur in the user's turn; unchanged otherwise."""
    if reading.category is None or quote_in_turn(reading.quote or "", user_turn):
        return reading
    return replace(
        reading,
        category=None,
        error=f"quote not found in the user's turn: {reading.quote!r}",
    )


def quote_not_found(reading: FeedbackReading) -> bool:
    """True for a reading whose label `label_checked` dropped."""
    return reading.parse_ok and reading.category is None and reading.error is not None
