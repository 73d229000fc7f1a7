"""The pairwise judge protocols: each version's prompt beside its parser, and the one table
that lists them.

| version            | protocol    | module            | the judge replies                     |
| ---                | ---         | ---               | ---                                   |
| `v1`               | scores      | `scores.py`       | `Scores: 8 3`, an explanation, `Verdict: [[A]]` (Arena Learning, 1-10 scores; with no label at all, the scores decide) |
| `arena-hard-v1`    | five-labels | `five_labels.py`  | a judgment, then `My final verdict is: ... [[A>B]]`; labels `[[A>>B]]` `[[A>B]]` `[[A=B]]` `[[B>A]]` `[[B>>A]]` |
| `mt-bench-pair-v1` | pair        | `pair.py`         | an explanation, then `[[A]]`, `[[B]]` or `[[C]]` (tie) |
| `json-v1`          | json        | `json_verdict.py` | one JSON object `{explanation, score_a, score_b, verdict}`, asked for with `response_format` |

Every reply maps to the same `Verdict` (`verdict.py`: winner by position, scores where
given, label strength where given); the text protocols share the label rules of
`labels.py` (what the words around a label say: `label_words.py`). A judgment stores its
version. To add a protocol: a module with its `PROMPT` and its parser, and one row in
`_PROTOCOLS` below.

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

from flywheel.evaluators.protocols import five_labels, json_verdict, pair, scores
from flywheel.evaluators.protocols.prompt import JudgePrompt
from flywheel.evaluators.protocols.verdict import Verdict

ReplyParser = Callable[[str], Verdict]

_PROTOCOLS: tuple[tuple[JudgePrompt, ReplyParser], ...] = (
    (scores.PROMPT, scores.parse_scores_reply),
    (five_labels.PROMPT, five_labels.parse_five_labels),
    (pair.PROMPT, pair.parse_pair),
    (json_verdict.PROMPT, json_verdict.parse_json_reply),
)

JUDGE_PROMPTS: dict[str, JudgePrompt] = {prompt.version: prompt for prompt, _ in _PROTOCOLS}
"""Every known judge prompt, by version."""
_PARSERS: dict[str, ReplyParser] = {prompt.version: parse for prompt, parse in _PROTOCOLS}


def judge_prompt(version: str) -> JudgePrompt:
    """The prompt of a version; a ValueError naming the known versions otherwise."""
    if version not in JUDGE_PROMPTS:
        known = ", ".join(sorted(JUDGE_PROMPTS))
        raise ValueError(f"unknown judge prompt version {version!r}; known versions: {known}")
    return JUDGE_PROMPTS[version]


def parse_reply(text: str, version: str = "v1") -> Verdict:
    """Parse a judge reply by the parser of its prompt version; never raises. An unknown
    version is read as `v1` (the scores protocol)."""
    return _PARSERS.get(version, scores.parse_scores_reply)(text)
