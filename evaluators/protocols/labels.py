"""Reading the verdict label of a judge reply, shared by every text protocol.

Rules (`find_label`), on a reply's `final_text`; never guesses:
1. Labels: `[[A]]` `[[B]]` `[[C]]` `[[Tie]]` and the five labels `[[A>>B]]` `[[A>B]]`
   `[[A=B]]` `[[B>A]]` `[[B>>A]]` (which also give the verdict's `strength`); on a verdict
   line single brackets `[A]` count too, in prose only double brackets do.
2. Final verdicts first: lines `Final verdict: [[B]]`, or a line starting `My final verdict
   is ...` and ending with the label. If there are none, standalone `Verdict: [[A]]` lines
   (markdown `**`, a leading `- `, any case); `Draft verdict:` (or preliminary, initial)
   lines never count. All verdicts of the rank used must agree, else the reply does not
   parse ("conflicting verdicts"): two different final verdicts stay unparsed.
3. Fallback (no verdict line): bracketed labels anywhere (FastChat's pattern); exactly one
   distinct label must occur, and its sentence must neither negate it (`not`, `cannot`,
   `neither`, ... before the label: "I cannot pick [[A]]") nor prefer another answer in
   words ("[[A]] since Assistant B is better"). A final-verdict sentence is checked the same
   way.

`label_only` adapts a verdict of a protocol that asks for a label and no scores.

Pure: standard library only.
"""

from __future__ import annotations

import re
from dataclasses import replace

from flywheel.evaluators.protocols.verdict import LINE_END, LINE_START, Verdict, Winner

# label (upper case, spaces removed) -> (winner by position, strength)
LABELS: dict[str, tuple[Winner, int | None]] = {
    "A": ("first", None),
    "B": ("second", None),
    "C": ("tie", None),
    "TIE": ("tie", None),
    "A>>B": ("first", 2),
    "A>B": ("first", 1),
    "A=B": ("tie", 0),
    "B>A": ("second", 1),
    "B>>A": ("second", 2),
}
_LABEL = r"(?:A\s*>>\s*B|A\s*>\s*B|A\s*=\s*B|B\s*>>\s*A|B\s*>\s*A|TIE|A|B|C)"
_DOUBLE = rf"\[\[\s*(?P<double>{_LABEL})\s*\]\]"
_SINGLE = rf"\[\s*(?P<single>{_LABEL})\s*\]"
_VERDICT_LINE_RE = re.compile(
    rf"{LINE_START}(?P<kind>final\s+|draft\s+|preliminary\s+|initial\s+)?verdict[\s*_]*:"
    rf"[\s*_]*(?:{_DOUBLE}|{_SINGLE}){LINE_END}",
    re.IGNORECASE,
)
_FINAL_SENTENCE_RE = re.compile(
    rf"{LINE_START}(?:my\s+)?final\s+(?:verdict|decision|answer)\b(?P<between>[^\[\]\n]*?)"
    rf"(?:{_DOUBLE}|{_SINGLE}){LINE_END}",
    re.IGNORECASE,
)
_PROSE_LABEL_RE = re.compile(_DOUBLE, re.IGNORECASE)
_NEGATION_RE = re.compile(
    r"\b(?:not|cannot|can't|can\s+not|never|no|neither|nor|won't|wouldn't|don't|doesn't|"
    r"isn't|unable|impossible|refuse)\b",
    re.IGNORECASE,
)
_PREFERENCE_RES = (
    re.compile(
        r"\b(?:assistant|answer|response)\s*(?P<who>[AB12])(?:'s\s+(?:answer|response))?\s+"
        r"(?:is|was)\s+(?:\w+\s+){0,2}?(?:better|superior|stronger|preferable|preferred)\b",
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:prefer|choose|pick)\s+(?:assistant|answer|response)\s*(?P<who>[AB12])\b",
        re.IGNORECASE,
    ),
)


def _label_of(match: re.Match[str]) -> str:
    return re.sub(r"\s+", "", (match.group("double") or match.group("single"))).upper()


def _preferred_positions(text: str) -> set[Winner]:
    """Positions that `text` says in words are better ("Assistant B is better")."""
    found: set[Winner] = set()
    for pattern in _PREFERENCE_RES:
        for m in pattern.finditer(text):
            found.add("first" if m.group("who").upper() in ("A", "1") else "second")
    return found


def _contradiction(label: str, before: str, after: str = "") -> str | None:
    """Why the words around a label negate it (a negation before it in its sentence) or
    contradict it (its sentence prefers another answer); None when they do neither."""
    winner = LABELS[label][0]
    if _NEGATION_RE.search(before):
        return f"negated label [[{label}]]: {before.strip()[:80]!r}"
    if _preferred_positions(before + " " + after) - {winner}:
        return f"contradicted label [[{label}]]: the same sentence prefers another answer"
    return None


_SENTENCE_STOPS = (". ", "! ", "? ", "\n", "; ")


def _sentence_around(text: str, start: int, end: int) -> tuple[str, str]:
    """(the text of a label's sentence before the label, the text after it)."""
    begin = max(text.rfind(stop, 0, start) for stop in _SENTENCE_STOPS) + 1
    ends = [i for stop in _SENTENCE_STOPS if (i := text.find(stop, end)) != -1]
    return text[begin:start], text[end : min(ends, default=len(text))]


def find_label(text: str) -> tuple[str | None, str | None]:
    """(label, None), or (None, why there is no usable verdict). See the module doc."""
    final_labels, verdict_labels, prose_lines = [], [], []
    for line in text.splitlines():
        if m := _VERDICT_LINE_RE.match(line):
            kind = (m.group("kind") or "").strip().lower()
            if kind == "final":
                final_labels.append(_label_of(m))
            elif not kind:
                verdict_labels.append(_label_of(m))
        elif m := _FINAL_SENTENCE_RE.match(line):
            label = _label_of(m)
            problem = _contradiction(label, m.group("between"))
            if problem is not None:
                return None, problem
            final_labels.append(label)
        else:
            prose_lines.append(line)  # a draft verdict line is neither
    for labels, source in ((final_labels, "final verdicts"), (verdict_labels, "verdict lines")):
        if labels:
            return _one_label(labels, source)
    text = "\n".join(prose_lines)
    prose = list(_PROSE_LABEL_RE.finditer(text))
    if not prose:
        return None, "no verdict: expected a final line `Verdict: [[A]]`, `[[B]]` or `[[C]]`"
    labels = [_label_of(m) for m in prose]
    label, problem = _one_label(labels, "bracketed labels")
    if label is None:
        return None, problem
    for m in prose:
        problem = _contradiction(label, *_sentence_around(text, m.start(), m.end()))
        if problem is not None:
            return None, problem
    return label, None


def _one_label(labels: list[str], source: str) -> tuple[str | None, str | None]:
    distinct = sorted({LABELS[label] for label in labels}, key=str)
    if len(distinct) > 1:
        return None, f"conflicting verdicts in {source}: {', '.join(sorted(set(labels)))}"
    return labels[-1], None


def label_only(verdict: Verdict) -> Verdict:
    """A verdict of a protocol that asks for a label and no scores: no scores are asked for,
    so none are missing; a decisive label without a strength (`[[A]]`) has strength 1, a
    tie 0. An unparsed verdict is returned as it is."""
    if not verdict.parse_ok:
        return verdict
    error = verdict.error
    if error is not None and error.startswith("scores missing"):
        error = None
    strength = verdict.strength
    if strength is None:
        strength = 0 if verdict.winner == "tie" else 1
    return replace(verdict, error=error, strength=strength)
