"""What the words around a verdict label say, for the label rules of `labels.py`.

- Negation: `not`, `cannot`, `neither`, ... before a label in its sentence negate it ("I
  cannot pick [[A]]"). For a tie label, the wording of a tie is no negation: "neither is
  better", "neither answer is clearly better", "neither Assistant A nor Assistant B is
  better", "no clear winner", "no significant difference", "neither has an advantage" (a
  tie phrase never holds the words `tie` or `tied`: "not a tie, A is better" stays negated).
- Preference in words: "Assistant B is better", "Answer 2 is superior", "Response A's answer
  is preferable", "I prefer Assistant A". In the text after a final verdict a bare letter
  counts too ("on reflection B is better", "I now prefer B"); there, and beside scores read
  alone, only an overall preference counts: a comparison in one respect ("Assistant B is
  better at formatting", "better organized", "better in terms of style") does not.
- Tie in words (`says_tie`, for replies read by their scores): "tie", "tied", "draw",
  "equally good", "of the same quality", "neither is better", "no clear winner".
- Revision cues, looked for in the text after a final verdict: "Wait,", "on reflection",
  "on second thought", "actually,", "I was wrong", "I made a mistake", "correction:", "let
  me reconsider", "I take that back", "change my verdict".

Pure: standard library only.
"""

from __future__ import annotations

import re

from flywheel.evaluators.protocols.verdict import Winner

_NEGATION_RE = re.compile(
    r"\b(?:not|cannot|can't|can\s+not|never|no|neither|nor|won't|wouldn't|don't|doesn't|"
    r"isn't|unable|impossible|refuse)\b",
    re.IGNORECASE,
)
_COMPARED = (
    r"(?:better|worse|superior|inferior|stronger|weaker|preferable|winner|difference|"
    r"different|advantage|edge|stands?\s+out|outperforms?)\b"
)
_NOT_A_TIE_WORD = r"(?!(?:tie|tied)\b)[\w']+"
_TIE_PHRASE_RE = re.compile(
    rf"\bneither\b(?:\s+{_NOT_A_TIE_WORD}){{1,3}}\s+nor\b(?:\s+{_NOT_A_TIE_WORD}){{0,4}}?\s+"
    rf"{_COMPARED}|\b(?:neither|no|not|nor|none)\b(?:\s+{_NOT_A_TIE_WORD}){{0,4}}?\s+{_COMPARED}",
    re.IGNORECASE,
)
_BETTER = r"(?:better|superior|stronger|preferable|preferred)\b"
_PREFERENCE_RES = (
    re.compile(
        r"\b(?:assistant|answer|response)\s*(?P<who>[AB12])(?:'s\s+(?:answer|response))?\s+"
        rf"(?:is|was)\s+(?:\w+\s+){{0,2}}?{_BETTER}",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:prefer|choose|pick)\s+(?:assistant|answer|response)\s*(?P<who>[AB12])\b",
        re.IGNORECASE,
    ),
)
_BARE_LETTER_PREFERENCE_RES = (
    re.compile(rf"\b(?P<who>[AB])\s+(?:is|was)\s+(?:\w+\s+){{0,2}}?{_BETTER}"),
    re.compile(r"\b(?:[Pp]refer|[Cc]hoose|[Pp]ick)\s+(?P<who>[AB])\b"),
)
_IN_ONE_RESPECT_RE = re.compile(
    r"\s+(?:at|in\s+terms\s+of|when\s+it\s+comes\s+to|regarding|for\s+(?:style|formatting|"
    r"readability|clarity|brevity)|organi[sz]ed|formatted|structured|presented|explained|"
    r"written|worded|phrased|commented|documented)\b",
    re.IGNORECASE,
)
_REVISION_RE = re.compile(
    r"\bwait\s*[,.!:;\u2014-]|\b(?:up)?on\s+(?:(?:second|further)\s+)?(?:thought|reflection)\b|"
    r"\b(?:up)?on\s+(?:a\s+)?(?:second|closer|further)\s+(?:look|inspection)\b|\bactually,|"
    r"\bi\s+was\s+wrong\b|\bi\s+made\s+a\s+mistake\b|\bcorrection\s*:|"
    r"\bi\s+take\s+(?:that|it)\s+back\b|"
    r"\blet\s+me\s+(?:reconsider|re-?check|re-?evaluate|revise|correct)\b|"
    r"\b(?:revise|change|correct|changing|revising)\s+my\s+(?:verdict|decision|judgment|answer)\b",
    re.IGNORECASE,
)
_TIE_WORDS_RE = re.compile(
    r"\b(?:tie|tied|draw|equally\s+(?:good|bad|helpful|correct|accurate|strong|weak|useful|well)|"
    r"of\s+(?:equal|the\s+same)\s+quality|no\s+clear\s+winner|"
    r"neither(?:\s+[\w']+){0,3}?\s+(?:is|are)\s+(?:\w+\s+)?(?:better|superior|preferable))\b",
    re.IGNORECASE,
)
_SENTENCE_STOPS = (". ", "! ", "? ", "\n", "; ")


def preferred_positions(
    text: str, *, bare_letters: bool = False, overall: bool = False
) -> set[Winner]:
    """Positions that `text` says in words are better ("Assistant B is better"); with
    `bare_letters` also "B is better" and "prefer B"; with `overall` a comparison in one
    respect ("better at formatting", "better organized", "better in terms of style") does
    not count."""
    patterns = _PREFERENCE_RES + (_BARE_LETTER_PREFERENCE_RES if bare_letters else ())
    found: set[Winner] = set()
    for pattern in patterns:
        for m in pattern.finditer(text):
            if overall and _IN_ONE_RESPECT_RE.match(text, m.end()):
                continue
            found.add("first" if m.group("who").upper() in ("A", "1") else "second")
    return found


def contradiction(label: str, winner: Winner, before: str, after: str = "") -> str | None:
    """Why the words around a label negate it (a negation before it in its sentence that is
    not the wording of a tie) or contradict it (its sentence prefers another answer); None
    when they do neither."""
    said_before, said_after = (
        _TIE_PHRASE_RE.sub(" ", words) if winner == "tie" else words for words in (before, after)
    )
    if _NEGATION_RE.search(said_before):
        return f"negated label [[{label}]]: {before.strip()[:80]!r}"
    if preferred_positions(said_before + " " + said_after) - {winner}:
        return f"contradicted label [[{label}]]: the same sentence prefers another answer"
    return None


def revision_cue(text: str) -> str | None:
    """The first words in `text` that revise a verdict ("Wait,", "on reflection"); None."""
    m = _REVISION_RE.search(text)
    return m.group(0).strip() if m else None


def says_tie(text: str) -> bool:
    """Whether `text` calls the answers a tie in words ("a tie", "equally good", "neither is
    better", "no clear winner")."""
    return _TIE_WORDS_RE.search(text) is not None


def sentence_around(text: str, start: int, end: int) -> tuple[str, str]:
    """(the text of a label's sentence before the label, the text after it)."""
    begin = max(text.rfind(stop, 0, start) for stop in _SENTENCE_STOPS) + 1
    ends = [i for stop in _SENTENCE_STOPS if (i := text.find(stop, end)) != -1]
    return text[begin:start], text[end : min(ends, default=len(text))]
