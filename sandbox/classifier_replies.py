"""The sandbox's implicit-feedback classifier: any sandbox model sent a request built by
`evaluators.feedback_prompts.build_classifier_messages` answers it as a model would, by
reading the user's next turn (never the traffic's ground truth, so the classifier's measured
precision and recall mean something).

Reading (`read_cues`), in order:

1. repeat         the turn restates the question the answer was for (most of its words), or
                  opens with a rephrase cue ("ask again", "rephrase", "once more");
2. a new request  the turn is a new skill task: only feedback leading it counts (a positive
                  cue such as "Thanks, that's right!" before the task); politeness or stray
                  words inside the task ("Thanks!", "No need to explain much") are not
                  feedback, except that the model takes them for feedback at `STRAY_CUE_RATE`;
3. correction     a negative cue (wrong, not quite, a mistake, no) with a proposed answer
                  ("the answer is X", "it should be X", "it's X");
4. complaint      a negative cue without one;
5. clarification  a request to explain ("what do you mean", "explain", "clarify", "how you
                  got");
6. positive       thanks, praise or confirmation; otherwise none.

Then the model errs in seeded, realistic ways (each draw seeded by the request): with
`malformed_rate` (the model's) it replies without a readable JSON object; a feedback turn is
missed (none) at `MISS_RATE`; a category is confused with its neighbour at `CONFUSIONS`
(a correction taken for a complaint when the proposed answer is overlooked, ...); at
`DESCRIBED_QUOTE_RATE` the quote describes the feedback instead of copying the user's words
(the flywheel then drops the label: quote not found). Confidence is high for a clear cue and
lower after a confusion or for a stray cue.

Pure and deterministic: standard library and the evaluators' skill helpers.
"""

from __future__ import annotations

import json
import random
import re

from flywheel.config import SandboxModelConfig
from flywheel.evaluators.feedback_prompts import ClassifierRequest
from flywheel.evaluators.skills import identify_skill

MISS_RATE = 0.06
STRAY_CUE_RATE = 0.15
DESCRIBED_QUOTE_RATE = 0.04
CONFUSIONS: dict[str, tuple[str, float]] = {
    "correction": ("complaint", 0.12),
    "complaint": ("correction", 0.03),
    "repeat": ("clarification", 0.06),
    "clarification": ("repeat", 0.05),
    "positive": ("complaint", 0.01),
}
DESCRIPTIONS: dict[str, str] = {
    "repeat": "the user asks the same question again",
    "correction": "the user says the answer is wrong and gives the right one",
    "complaint": "the user says the answer is wrong",
    "clarification": "the user asks how the answer was reached",
    "positive": "the user thanks the assistant",
}
MALFORMED_REPLIES: tuple[str, ...] = (
    "The user seems unhappy with the answer, so this is negative feedback.",
    '{"category": "negative", "quote": "", "confidence": 0.8}',
    "Category: complaint (the user disagrees).",
)

_SENTENCE_RE = re.compile(r"[^.!?:]+[.!?:]*")
_REPHRASE_RE = re.compile(r"\b(ask(ing)? again|rephrase|once more|same question)\b", re.I)
_NEGATIVE_RE = re.compile(
    r"\b(wrong|not quite|not correct|incorrect|mistake|doesn'?t look right|not right)\b|^no\b",
    re.I,
)
_PROPOSAL_RE = re.compile(r"\b(answer is|should be|it'?s|it is)\s+(?!not\b|wrong\b)\S+", re.I)
_CLARIFY_RE = re.compile(
    r"\b(what do you mean|explain|clarify|don'?t follow|how (did )?you (got|get|reach))", re.I
)
_POSITIVE_RE = re.compile(
    r"\b(thanks|thank you|perfect|great|exactly|that'?s right|awesome|well done)\b", re.I
)
_WORD_RE = re.compile(r"[a-z0-9']+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip()]


def _restates(turn: str, question: str) -> bool:
    """Most of the question's words (at least 5 of them) come back in the turn."""
    asked = set(_WORD_RE.findall(question.lower()))
    said = set(_WORD_RE.findall(turn.lower()))
    return len(asked) >= 5 and len(asked & said) >= 0.8 * len(asked)


def _span(text: str, first: str, last: str) -> str:
    """The text from `first` to the end of `last` (`first` alone when `last` comes before)."""
    start, end = text.find(first), text.rfind(last)
    return text[start : end + len(last)] if 0 <= start <= end else first


def _first_match(sentences: list[str], pattern: re.Pattern[str]) -> str | None:
    return next((s for s in sentences if pattern.search(s)), None)


def _feedback_cue(sentences: list[str]) -> tuple[str, str] | None:
    """(category, quote) of the cues of a feedback turn (steps 3-6 of the module doc)."""
    negative = _first_match(sentences, _NEGATIVE_RE)
    if negative is not None:
        proposal = _first_match(sentences, _PROPOSAL_RE)
        if proposal is not None:
            return "correction", _span(" ".join(sentences), negative, proposal)
        return "complaint", negative
    clarify = _first_match(sentences, _CLARIFY_RE)
    if clarify is not None:
        return "clarification", clarify
    positive = _first_match(sentences, _POSITIVE_RE)
    if positive is not None:
        return "positive", positive
    return None


def read_cues(request: ClassifierRequest, rng: random.Random) -> tuple[str, str, bool] | None:
    """(category, quote, clear) the turn's cues say, by the module doc's reading; None: no
    feedback. `clear` is False for a stray cue taken for feedback."""
    turn = request.user_turn.strip()
    sentences = _sentences(turn)
    if not sentences:
        return None
    rephrase = _first_match(sentences[:1], _REPHRASE_RE)
    if rephrase is not None or (request.question and _restates(turn, request.question)):
        return "repeat", rephrase or sentences[0], True
    if identify_skill(turn) is None:
        cue = _feedback_cue(sentences)
        return None if cue is None else (*cue, True)
    lead = _feedback_cue(sentences[:1])
    if lead is not None and lead[0] == "positive":
        return "positive", lead[1], True
    stray = _feedback_cue(sentences)
    if stray is not None and rng.random() < STRAY_CUE_RATE:
        return stray[0], stray[1], False
    return None


def classifier_reply(
    model_name: str, model: SandboxModelConfig, seed: int, request: ClassifierRequest, key: str
) -> str:
    """The reply of sandbox model `model_name` to a classifier request (module doc)."""
    rng = random.Random(f"{seed}|{model_name}|classifier|{key}")
    if rng.random() < model.malformed_rate:
        return rng.choice(MALFORMED_REPLIES)
    cue = read_cues(request, rng)
    if cue is None or rng.random() < MISS_RATE:
        return _reply("none", "", rng.uniform(0.6, 0.92))
    category, quote, clear = cue
    neighbour, confusion_rate = CONFUSIONS[category]
    confused = rng.random() < confusion_rate
    if confused:
        category = neighbour
    if rng.random() < DESCRIBED_QUOTE_RATE:
        quote = DESCRIPTIONS[category]
    sure = clear and not confused
    confidence = rng.uniform(0.8, 0.98) if sure else rng.uniform(0.45, 0.7)
    return _reply(category, quote, confidence)


def _reply(category: str, quote: str, confidence: float) -> str:
    return json.dumps({"category": category, "quote": quote, "confidence": round(confidence, 2)})
