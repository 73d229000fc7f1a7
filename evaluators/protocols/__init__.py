"""The pairwise judge protocols: each version's prompt beside its parser, and the one table
that lists them.

| version            | protocol    | module            | the judge replies                     |
| ---                | ---         | ---               | ---                                   |
| `v1`               | scores      | `scores.py`       | `Scores: 8 3`, an explanation, `Verdict: [[A]]` (Arena Learning, 1-10 scores; with no label at all, the scores decide) |
| `arena-hard-v1`    | five-labels | `five_labels.py`  | a judgment, then `My final verdict is: ... [[A>B]]`; labels `[[A>>B]]` `[[A>B]]` `[[A=B]]` `[[B>A]]` `[[B>>A]]` |
| `mt-bench-pair-v1` | pair        | `pair.py`         | an explanation, then `[[A]]`, `[[B]]` or `[[C]]` (tie) |
| `json-v1`          | json        | `json_verdict.py` | one JSON object `{explanation, score_a, score_b, verdict}`, asked for with `response_format` |

The conversation protocols compare two whole conversations (`evaluation.conversations`), not
two answers, so they are listed apart (`CONVERSATION_PROMPTS`) and `judge.prompt_version`
never accepts them:

| version               | protocol    | module            | the judge replies                  |
| ---                   | ---         | ---               | ---                                |
| `conv-five-labels-v1` | five-labels | `conversation.py` | a judgment, then a five-label verdict on the last line |

Every reply maps to the same `Verdict` (`verdict.py`: winner by position, scores where
given, label strength where given); the text protocols share the label rules of
`labels.py` (what the words around a label say: `label_words.py`). A judgment stores its
version. To add a protocol: a module with its `PROMPT` and its parser, and one row in
`_PROTOCOLS` below.

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

from flywheel.evaluators.protocols import conversation, five_labels, json_verdict, pair, scores
from flywheel.evaluators.protocols.prompt import JudgePrompt
from flywheel.evaluators.protocols.verdict import Verdict

ReplyParser = Callable[[str], Verdict]

_PROTOCOLS: tuple[tuple[JudgePrompt, ReplyParser], ...] = (
    (scores.PROMPT, scores.parse_scores_reply),
    (five_labels.PROMPT, five_labels.parse_five_labels),
    (pair.PROMPT, pair.parse_pair),
    (json_verdict.PROMPT, json_verdict.parse_json_reply),
)

_CONVERSATION_PROTOCOLS: tuple[tuple[JudgePrompt, ReplyParser], ...] = (
    (conversation.PROMPT, conversation.parse_conversation_verdict),
)

JUDGE_PROMPTS: dict[str, JudgePrompt] = {prompt.version: prompt for prompt, _ in _PROTOCOLS}
"""Every known pairwise judge prompt (two answers), by version."""
CONVERSATION_PROMPTS: dict[str, JudgePrompt] = {
    prompt.version: prompt for prompt, _ in _CONVERSATION_PROTOCOLS
}
"""Every known conversation judge prompt (two whole conversations), by version."""
_PARSERS: dict[str, ReplyParser] = {
    prompt.version: parse for prompt, parse in (*_PROTOCOLS, *_CONVERSATION_PROTOCOLS)
}


def judge_prompt(version: str) -> JudgePrompt:
    """The prompt of a version (pairwise or conversation); a ValueError naming the known
    versions otherwise."""
    prompts = JUDGE_PROMPTS | CONVERSATION_PROMPTS
    if version not in prompts:
        known = ", ".join(sorted(prompts))
        raise ValueError(f"unknown judge prompt version {version!r}; known versions: {known}")
    return prompts[version]


def parse_reply(text: str, version: str = "v1") -> Verdict:
    """Parse a judge reply by the parser of its prompt version; never raises. An unknown
    version is read as `v1` (the scores protocol)."""
    return _PARSERS.get(version, scores.parse_scores_reply)(text)
