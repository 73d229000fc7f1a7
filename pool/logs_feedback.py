"""Explicit feedback in production logs: what a thumb, a score or a vote says, as one label.

A log's feedback comes as a thumb (`"up"`, `"thumbs_down"`, `true`), a number on some scale
(LangSmith `score`, Langfuse `value` with `dataType`), a category (`"helpful"`), a comment or
a corrected answer. `feedback_label` reads the polarity, never guessing:

- words: up, thumbs_up, like, good, helpful, correct, positive, yes, true (and their
  opposites) -> positive / negative; neutral, meh, ok -> neutral; any other word: None.
- booleans: true -> positive, false -> negative.
- numbers: 1 -> positive, 0 and below -> negative; strictly between 0 and 1: >= 0.5 positive,
  else negative; on a 1-5 scale (above 1, at most 5): 4-5 positive, 3 neutral, below 3
  negative; on a 1-10 scale (above 5, at most 10): 7-10 positive, 5-6 neutral, below 5
  negative; above 10: None (unknown scale).
- a correction alone (no score) says the answer was wrong: negative.

Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Label = Literal["positive", "negative", "neutral"]
FeedbackKind = Literal["thumb", "score", "vote", "category", "comment", "correction"]

POSITIVE_WORDS = frozenset(
    "up thumbs_up thumbsup thumb_up +1 like liked good great helpful correct positive yes "
    "true accept accepted upvote 👍".split()
)
NEGATIVE_WORDS = frozenset(
    "down thumbs_down thumbsdown thumb_down -1 dislike disliked bad wrong unhelpful incorrect "
    "negative no false reject rejected downvote 👎".split()
)
NEUTRAL_WORDS = frozenset("neutral meh ok okay mixed".split())


@dataclass(frozen=True)
class Feedback:
    """One explicit feedback on an assistant turn of a logged conversation.

    `turn_index` is the position (from 0) of the assistant turn it is about among the
    conversation's turns; None until the parser resolves it (the last assistant turn)."""

    kind: FeedbackKind
    label: Label | None
    score: float | None = None
    value: str | None = None
    comment: str | None = None
    correction: str | None = None
    key: str | None = None  # the feedback's name in the log (LangSmith key, Langfuse name)
    turn_index: int | None = None
    origin_id: str | None = None  # the log's own id of this feedback, when it has one


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def label_of_number(score: float) -> Label | None:
    """The polarity of a numeric score on the scales in the module doc."""
    if score <= 0:
        return "negative"
    if score < 1:
        return "positive" if score >= 0.5 else "negative"
    if score == 1:
        return "positive"
    if score <= 5:
        return "positive" if score >= 4 else "neutral" if score >= 3 else "negative"
    if score <= 10:
        return "positive" if score >= 7 else "neutral" if score >= 5 else "negative"
    return None


def label_of_word(word: str) -> Label | None:
    """The polarity of a thumb or category word; None for a word not listed."""
    key = word.strip().lower().replace(" ", "_").replace("-", "_")
    if key in POSITIVE_WORDS or word.strip() in POSITIVE_WORDS:
        return "positive"
    if key in NEGATIVE_WORDS or word.strip() in NEGATIVE_WORDS:
        return "negative"
    if key in NEUTRAL_WORDS:
        return "neutral"
    return None


def feedback_label(score: Any, value: Any = None, correction: Any = None) -> Label | None:
    """The polarity of a (score, value, correction) as the module doc reads them."""
    if isinstance(score, bool):
        return "positive" if score else "negative"
    number = _number(score)
    if number is not None:
        return label_of_number(number)
    for given in (score, value):
        if isinstance(given, bool):
            return "positive" if given else "negative"
        if _number(given) is not None:
            return label_of_number(float(given))
        if isinstance(given, str) and given.strip():
            return label_of_word(given)
    if correction:
        return "negative"
    return None


def kind_of(score: Any, value: Any, comment: Any, correction: Any) -> FeedbackKind:
    """What the feedback mainly is: a correction, a score, a thumb, a category or a comment."""
    if correction:
        return "correction"
    if isinstance(score, bool) or isinstance(value, bool):
        return "thumb"
    if _number(score) is not None or _number(value) is not None:
        return "score"
    for given in (score, value):
        if isinstance(given, str) and given.strip():
            return "thumb" if label_of_word(given) in ("positive", "negative") else "category"
    return "comment"


def text_or_none(value: Any) -> str | None:
    """Text as given; a number or boolean as its JSON text; an object as compact JSON."""
    import json

    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def correction_text(value: Any) -> str | None:
    """A corrected answer as text: text as is; LangSmith's `{"output": ...}` or
    `{"content": ...}` object read through; a message list's last assistant content."""
    if isinstance(value, dict):
        for name in ("output", "content", "text", "answer", "message"):
            if name in value:
                return correction_text(value[name])
        return text_or_none(value)
    if isinstance(value, list):
        for item in reversed(value):
            if isinstance(item, dict) and item.get("role") in ("assistant", "ai"):
                return correction_text(item.get("content"))
        return text_or_none(value)
    return text_or_none(value)


def make_feedback(
    *,
    score: Any = None,
    value: Any = None,
    comment: Any = None,
    correction: Any = None,
    key: Any = None,
    turn_index: int | None = None,
    origin_id: Any = None,
) -> Feedback | None:
    """A Feedback from a log's fields; None when it says nothing at all."""
    corrected = correction_text(correction)
    comment_text = text_or_none(comment)
    if score is None and value is None and comment_text is None and corrected is None:
        return None
    number = _number(score)
    if number is None and _number(value) is not None and not isinstance(value, bool):
        number = float(value)
    if isinstance(score, bool):
        number = 1.0 if score else 0.0
    return Feedback(
        kind=kind_of(score, value, comment_text, corrected),
        label=feedback_label(score, value, corrected),
        score=number,
        value=text_or_none(value if value is not None else score),
        comment=comment_text,
        correction=corrected,
        key=text_or_none(key),
        turn_index=turn_index,
        origin_id=text_or_none(origin_id),
    )
