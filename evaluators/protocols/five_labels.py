"""The `five-labels` protocol (version `arena-hard-v1`, after Arena-Hard): its prompt and its
parser.

The judge writes its own judgment of both answers, then a last line such as `My final verdict
is: Assistant A is slightly better: [[A>B]]`, with one of the labels `[[A>>B]]` `[[A>B]]`
`[[A=B]]` `[[B>A]]` `[[B>>A]]`. The label gives the winner and its strength (2 significantly,
1 slightly, 0 a tie); no scores are asked for.

Pure: standard library only.
"""

from __future__ import annotations

from flywheel.evaluators.protocols.labels import label_only
from flywheel.evaluators.protocols.prompt import IMPARTIAL_SYSTEM, JudgePrompt, user_template
from flywheel.evaluators.protocols.scores import parse_verdict
from flywheel.evaluators.protocols.verdict import Verdict

_SYSTEM_ARENA_HARD = (
    IMPARTIAL_SYSTEM
    + """

First write your own brief judgment of the two answers: what each gets right and wrong, \
and what is missing. Then output your final verdict with exactly one of these labels, on the \
last line:
1. Assistant A is significantly better: [[A>>B]]
2. Assistant A is slightly better: [[A>B]]
3. Tie, relatively the same: [[A=B]]
4. Assistant B is slightly better: [[B>A]]
5. Assistant B is significantly better: [[B>>A]]

Example last line: "My final verdict is: Assistant A is slightly better: [[A>B]]"."""
)

PROMPT = JudgePrompt(
    version="arena-hard-v1",
    system=_SYSTEM_ARENA_HARD,
    user_template=user_template(
        "Now give your judgment and, on the last line, your final verdict label."
    ),
    protocol="five-labels",
)


def parse_five_labels(text: str) -> Verdict:
    """Parse a five-label reply by the label rules; never raises. Scores, if any are written,
    are kept as `parse_verdict` keeps them; a label without strength (`[[A]]`) has 1."""
    return label_only(parse_verdict(text))
