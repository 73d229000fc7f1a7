"""The `json` protocol (version `json-v1`): its prompt and its parser.

The judge replies with one JSON object `{explanation, score_a, score_b, verdict}` (verdict
`A`, `B` or `tie`), asked for with `response_format` (a JSON schema). An endpoint that refuses
`response_format` (HTTP 400) is asked again without it (`tasks/judge.py`) and its text reply
is parsed: a bare object, one in a ```json fence, or, with no JSON object in it at all, the
text layouts of `parse_scores_reply`.

- A verdict may name the assistant: `"Assistant A"`, `"Answer B"`, `"Response A"`, `"Model
  B"` (any case) are `A` and `B`; anything else but `A`, `B`, `tie`, `C` stays unparsed.
- Objects with different verdicts: unparsed. Scores that are not numbers, out of 1-10, or
  against the verdict are dropped and the verdict stands (as in `v1`).
- No object has a `verdict` but objects give `score_a` and `score_b`: read by their one pair
  of scores (`verdict_by_scores`: the higher wins, equal tie; unparsed when its words
  disagree, see `scores.py`); a reply that also names a label or verdict outside the JSON is
  read by its text layouts instead.

Pure: standard library only.
"""

from __future__ import annotations

import re
from typing import Any

from flywheel.evaluators.json_objects import json_objects
from flywheel.evaluators.protocols.labels import mentions_a_verdict
from flywheel.evaluators.protocols.prompt import IMPARTIAL_SYSTEM, JudgePrompt, user_template
from flywheel.evaluators.protocols.scores import parse_scores_reply, verdict_by_scores
from flywheel.evaluators.protocols.verdict import (
    Verdict,
    Winner,
    final_text,
    scores_problem,
    unparsed,
)

_SYSTEM_JSON = (
    IMPARTIAL_SYSTEM
    + """

Reply with one JSON object and nothing else:
{"explanation": "<one or two sentences comparing the answers>", "score_a": <integer 1-10>, \
"score_b": <integer 1-10>, "verdict": "A" | "B" | "tie"}
Scores are integers from 1 (worst) to 10 (best); the verdict names the better answer."""
)

VERDICT_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string"},
        "score_a": {"type": "integer"},
        "score_b": {"type": "integer"},
        "verdict": {"type": "string", "enum": ["A", "B", "tie"]},
    },
    "required": ["explanation", "score_a", "score_b", "verdict"],
    "additionalProperties": False,
}
RESPONSE_FORMAT_JSON: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "pairwise_verdict", "strict": True, "schema": VERDICT_JSON_SCHEMA},
}

PROMPT = JudgePrompt(
    version="json-v1",
    system=_SYSTEM_JSON,
    user_template=user_template("Now reply with the JSON object."),
    protocol="json",
    response_format=RESPONSE_FORMAT_JSON,
)

_JSON_VERDICTS: dict[str, Winner] = {"A": "first", "B": "second", "TIE": "tie", "C": "tie"}
_NAMED_VERDICT_RE = re.compile(
    r"^(?:assistant|answer|response|model)[\s_]*(?=[AB]$)", re.IGNORECASE
)


def _verdict_key(value: object) -> str:
    """A JSON verdict as a key of _JSON_VERDICTS: `"a"` -> `A`, `"Assistant B"` -> `B`."""
    return _NAMED_VERDICT_RE.sub("", str(value).strip()).upper()


def _json_score(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _verdict_of_scores_alone(objects: list[dict], reply: str) -> Verdict | None:
    """Objects that give `score_a` and `score_b` and no `verdict`: read by their one pair of
    scores (`verdict_by_scores`, the whole reply as its words); None when there are none or
    the reply names a label or verdict elsewhere (then its text layouts read it)."""
    scored = [o for o in objects if "score_a" in o and "score_b" in o]
    if not scored or mentions_a_verdict(reply):
        return None
    pairs = {(_json_score(o["score_a"]), _json_score(o["score_b"])) for o in scored}
    first, second = pairs.pop()
    if pairs or first is None or second is None:
        return unparsed("no JSON verdict, and score_a/score_b are not one pair of numbers")
    return verdict_by_scores(first, second, reply)


def parse_json_verdict(text: str) -> Verdict | None:
    """A reply of the JSON protocol (a bare object, or one in a ```json fence); None when it
    holds no JSON object with a `verdict` or with both scores (then the text layouts are
    tried)."""
    final = final_text(text) if isinstance(text, str) else ""
    found = json_objects(final)
    objects = [o for o in found if "verdict" in o]
    if not objects:
        return _verdict_of_scores_alone(found, final)
    winners = {_verdict_key(o.get("verdict")) for o in objects}
    if len(winners) > 1:
        return unparsed(f"conflicting verdicts in JSON objects: {', '.join(sorted(winners))}")
    last = objects[-1]
    winner = _JSON_VERDICTS.get(_verdict_key(last.get("verdict")))
    if winner is None:
        return unparsed(f"JSON verdict must be A, B or tie (got {last.get('verdict')!r})")
    first, second = _json_score(last.get("score_a")), _json_score(last.get("score_b"))
    if first is None or second is None:
        return Verdict(True, winner, None, None, "scores missing: JSON score_a/score_b not numbers")
    problem = scores_problem(winner, first, second)
    if problem is not None:
        return Verdict(True, winner, None, None, problem)
    return Verdict(True, winner, first, second, None)


def parse_json_reply(text: str) -> Verdict:
    """Parse a JSON-protocol reply: its JSON object, else (no JSON object with a `verdict` or
    both scores) the text layouts of `parse_scores_reply`; never raises."""
    verdict = parse_json_verdict(text)
    return verdict if verdict is not None else parse_scores_reply(text)
