"""The `json` protocol (version `json-v1`): its prompt and its parser.

The judge replies with one JSON object `{explanation, score_a, score_b, verdict}` (verdict
`A`, `B` or `tie`), asked for with `response_format` (a JSON schema). An endpoint that refuses
`response_format` (HTTP 400) is asked again without it (`tasks/judge.py`) and its text reply
is parsed: a bare object, one in a ```json fence, or, with no JSON object in it at all, the
text layouts of `parse_verdict`.

Pure: standard library only.
"""

from __future__ import annotations

import json
from typing import Any

from flywheel.evaluators.protocols.prompt import IMPARTIAL_SYSTEM, JudgePrompt, user_template
from flywheel.evaluators.protocols.scores import parse_verdict
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


def _json_objects(text: str) -> list[dict]:
    """Every JSON object in `text` that has a `verdict` key, in order."""
    decoder, found, position = json.JSONDecoder(), [], 0
    while (start := text.find("{", position)) != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(obj, dict) and "verdict" in obj:
            found.append(obj)
        position = end
    return found


def _json_score(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_json_verdict(text: str) -> Verdict | None:
    """A reply of the JSON protocol (a bare object, or one in a ```json fence); None when it
    holds no JSON object with a `verdict` (then the text layouts are tried)."""
    objects = _json_objects(final_text(text)) if isinstance(text, str) else []
    if not objects:
        return None
    winners = {str(o.get("verdict")).strip().upper() for o in objects}
    if len(winners) > 1:
        return unparsed(f"conflicting verdicts in JSON objects: {', '.join(sorted(winners))}")
    last = objects[-1]
    winner = _JSON_VERDICTS.get(str(last.get("verdict")).strip().upper())
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
    """Parse a JSON-protocol reply: its JSON object, else (no JSON object with a `verdict`)
    the text layouts of `parse_verdict`; never raises."""
    verdict = parse_json_verdict(text)
    return verdict if verdict is not None else parse_verdict(text)
