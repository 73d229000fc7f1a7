"""The sandbox judge's replies: a well-formed reply in each judge protocol, written from two
scores (what the simulated judge of `sandbox/models.py` answers).

Every reply written here parses back with `evaluators.protocols.parse_reply` to the verdict
the scores amount to (the higher score wins, equal scores tie).
"""

from __future__ import annotations

import json

from flywheel.evaluators.protocols import judge_prompt


def format_verdict_reply(score_first: int, score_second: int, explanation: str) -> str:
    """A well-formed v1 judge reply; the verdict follows the scores (equal scores: tie)."""
    label = "A" if score_first > score_second else "B" if score_second > score_first else "C"
    explanation = " ".join(explanation.split())
    return f"Scores: {score_first} {score_second}\nExplanation: {explanation}\nVerdict: [[{label}]]"


STRONG_SCORE_DIFF = 4
"""A five-label reply written from scores calls a difference this large significant."""
_FIVE_LABEL_PHRASES = {
    "A>>B": "Assistant A is significantly better",
    "A>B": "Assistant A is slightly better",
    "A=B": "Tie, relatively the same",
    "B>A": "Assistant B is slightly better",
    "B>>A": "Assistant B is significantly better",
}


def five_label_for(score_first: float, score_second: float) -> str:
    """The five-label verdict that two scores amount to (a difference of STRONG_SCORE_DIFF or
    more is significant)."""
    diff = score_first - score_second
    if diff == 0:
        return "A=B"
    strong = abs(diff) >= STRONG_SCORE_DIFF
    if diff > 0:
        return "A>>B" if strong else "A>B"
    return "B>>A" if strong else "B>A"


def format_protocol_reply(
    version: str,
    score_first: int,
    score_second: int,
    explanation: str,
    *,
    structured: bool = True,
) -> str:
    """A well-formed reply in the protocol of `version`, deciding by the two scores (what the
    sandbox judge writes). `structured` False: a JSON reply asked for without
    `response_format` comes as text, in a ```json fence."""
    protocol = judge_prompt(version).protocol
    explanation = " ".join(explanation.split())
    if protocol == "five-labels":
        label = five_label_for(score_first, score_second)
        return f"{explanation}\n\nMy final verdict is: {_FIVE_LABEL_PHRASES[label]}: [[{label}]]"
    if protocol == "pair":
        label = "A" if score_first > score_second else "B" if score_second > score_first else "C"
        return f"{explanation}\n\n[[{label}]]"
    if protocol == "json":
        verdict = (
            "A" if score_first > score_second else "B" if score_second > score_first else "tie"
        )
        body = {
            "explanation": explanation,
            "score_a": score_first,
            "score_b": score_second,
            "verdict": verdict,
        }
        text = json.dumps(body, ensure_ascii=False)
        return text if structured else f"Here is my verdict.\n```json\n{text}\n```"
    return format_verdict_reply(score_first, score_second, explanation)
