"""The `pair` protocol (version `mt-bench-pair-v1`, after MT-bench's pairwise judge): its
prompt and its parser.

The judge writes a short explanation comparing the answers, then on the last line `[[A]]` if
Assistant A is better, `[[B]]` if Assistant B is better, `[[C]]` for a tie; no scores are
asked for. A decisive label has strength 1, a tie 0.

Pure: standard library only.
"""

from __future__ import annotations

from flywheel.evaluators.protocols.labels import label_only
from flywheel.evaluators.protocols.prompt import IMPARTIAL_SYSTEM, JudgePrompt, user_template
from flywheel.evaluators.protocols.scores import parse_verdict
from flywheel.evaluators.protocols.verdict import Verdict

_SYSTEM_MT_BENCH_PAIR = (
    IMPARTIAL_SYSTEM
    + """

Begin with a short explanation comparing the two answers. After it, output your final \
verdict by strictly following this format on the last line: "[[A]]" if Assistant A is \
better, "[[B]]" if Assistant B is better, and "[[C]]" for a tie."""
)

PROMPT = JudgePrompt(
    version="mt-bench-pair-v1",
    system=_SYSTEM_MT_BENCH_PAIR,
    user_template=user_template(
        "Now give your explanation and, on the last line, [[A]], [[B]] or [[C]]."
    ),
    protocol="pair",
)


def parse_pair(text: str) -> Verdict:
    """Parse a pair-label reply by the label rules; never raises."""
    return label_only(parse_verdict(text))
