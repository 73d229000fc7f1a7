"""Reading the verdict label of a judge reply, shared by every text protocol.

Rules (`find_label`), on a reply's `final_text`; never guesses:
1. Labels: `[[A]]` `[[B]]` `[[C]]` `[[Tie]]` and the five labels `[[A>>B]]` `[[A>B]]`
   `[[A=B]]` `[[B>A]]` `[[B>>A]]` (which also give the verdict's `strength`), also written the
   other way round (`[[B<A]]` is `[[A>B]]`, `[[A<<B]]` is `[[B>>A]]`, `[[B=A]]` is `[[A=B]]`);
   on a verdict line single brackets `[A]` count too, in prose only double brackets do. A
   comparison of two labels, `[[B]] is better than [[A]]` (or superior, preferable, worse
   ... than/to), reads as the one label it names the better (`[[B]]`).
2. Final verdicts first: lines `Final verdict: [[B]]`, or a line starting `My final verdict
   is ...` and ending with the label. If there are none, standalone `Verdict: [[A]]` lines
   (markdown `**`, a leading `- `, any case); `Draft verdict:` (or preliminary, initial)
   lines never count. All verdicts of the rank used must name the same winner, else the
   reply does not parse ("conflicting verdicts"): two different final verdicts stay
   unparsed. The same winner at two strengths (`[[A>B]]` and `[[A>>B]]`) is read with the
   strength of the last of them, as the protocols ask for the verdict last.
3. Fallback (no verdict line): bracketed labels anywhere (FastChat's pattern); they must all
   name the same winner, and no label's sentence may negate it (`not`, `cannot`, `neither`,
   ... before the label: "I cannot pick [[A]]") or prefer another answer in words ("[[A]]
   since Assistant B is better"); "neither is better: [[A=B]]" is the wording of a tie, no
   negation (`label_words.py`). A final-verdict sentence is checked the same way.
4. Nothing after the verdict may correct it: the text after the last verdict line used (or
   after the last bracketed label) must hold no label of another winner, no overall
   preference in words for another answer ("B is better"; "B is better at formatting" is
   no correction), and no revision cue ("Wait,", "on reflection", "actually,", "I was
   wrong"); else the reply does not parse ("verdict corrected after it"), so a correction
   never yields the earlier verdict.

`mentions_a_verdict` says whether a reply names any label or verdict at all (the scores
protocol reads a reply by its scores only when it does not). `label_only` adapts a verdict
of a protocol that asks for a label and no scores.

Pure: standard library only.
"""

from __future__ import annotations

import re
from dataclasses import replace

from flywheel.evaluators.protocols.label_words import (
    contradiction,
    preferred_positions,
    revision_cue,
    sentence_around,
)
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
    "B<<A": ("first", 2),
    "B<A": ("first", 1),
    "B=A": ("tie", 0),
    "A<B": ("second", 1),
    "A<<B": ("second", 2),
}
_LABEL = (
    "(?:"
    + "|".join(
        r"\s*".join(re.escape(part) for part in re.findall(r"[A-Z]+|[<>=]+", label))
        for label in sorted(LABELS, key=len, reverse=True)
    )
    + ")"
)
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
_ANY_LABEL_RE = re.compile(rf"\[\s*(?P<single>{_LABEL})\s*\]", re.IGNORECASE)
_VERDICT_WORD_RE = re.compile(r"\bverdict\b", re.IGNORECASE)
_COMPARISON_RE = re.compile(
    r"\[\[\s*(?P<x>[AB])\s*\]\]\s+(?:is|was)\s+(?:(?:clearly|much|slightly|significantly|far|"
    r"somewhat|marginally|a\s+bit)\s+)?(?P<how>better|superior|stronger|preferable|worse|"
    r"inferior|weaker)\s+(?:than|to)\s+\[\[\s*(?P<y>[AB])\s*\]\]",
    re.IGNORECASE,
)
_WORSE = ("worse", "inferior", "weaker")


def _label_of(match: re.Match[str]) -> str:
    found = match.groupdict()
    return re.sub(r"\s+", "", found.get("double") or found["single"]).upper()


def _fold_comparison(match: re.Match[str]) -> str:
    """`[[B]] is better than [[A]]` -> `[[B]]` (the one it names better); two equal letters
    are no comparison and stay as written."""
    x, y = match.group("x").upper(), match.group("y").upper()
    if x == y:
        return match.group(0)
    return f"[[{y if match.group('how').lower() in _WORSE else x}]]"


def mentions_a_verdict(text: str) -> bool:
    """Whether `text` names any label (`[[A]]`, `[A>B]`, ...) or the word "verdict"."""
    return bool(_ANY_LABEL_RE.search(text) or _VERDICT_WORD_RE.search(text))


def find_label(text: str) -> tuple[str | None, str | None]:
    """(label, None), or (None, why there is no usable verdict). See the module doc."""
    lines = _COMPARISON_RE.sub(_fold_comparison, text).splitlines()
    final, plain, prose_lines = [], [], []  # final and plain: (line index, label)
    for i, line in enumerate(lines):
        if m := _VERDICT_LINE_RE.match(line):
            kind = (m.group("kind") or "").strip().lower()
            if kind == "final":
                final.append((i, _label_of(m)))
            elif not kind:
                plain.append((i, _label_of(m)))
        elif m := _FINAL_SENTENCE_RE.match(line):
            label = _label_of(m)
            problem = contradiction(label, LABELS[label][0], m.group("between"))
            if problem is not None:
                return None, problem
            final.append((i, label))
        else:
            prose_lines.append(line)  # a draft verdict line is neither
    for ranked, source in ((final, "final verdicts"), (plain, "verdict lines")):
        if ranked:
            label, problem = _one_label([label for _, label in ranked], source)
            if label is None:
                return None, problem
            return _unless_corrected(label, "\n".join(lines[ranked[-1][0] + 1 :]))
    return _prose_label("\n".join(prose_lines))


def _prose_label(text: str) -> tuple[str | None, str | None]:
    """The fallback of rule 3: bracketed labels anywhere in the lines that are no verdict."""
    prose = list(_PROSE_LABEL_RE.finditer(text))
    if not prose:
        return None, "no verdict: expected a final line `Verdict: [[A]]`, `[[B]]` or `[[C]]`"
    label, problem = _one_label([_label_of(m) for m in prose], "bracketed labels")
    if label is None:
        return None, problem
    for m in prose:
        problem = contradiction(label, LABELS[label][0], *sentence_around(text, m.start(), m.end()))
        if problem is not None:
            return None, problem
    return _unless_corrected(label, text[prose[-1].end() :])


def _one_label(labels: list[str], source: str) -> tuple[str | None, str | None]:
    """The last label when all name the same winner (rule 2), else why not."""
    if len({LABELS[label][0] for label in labels}) > 1:
        return None, f"conflicting verdicts in {source}: {', '.join(sorted(set(labels)))}"
    return labels[-1], None


def _unless_corrected(label: str, after: str) -> tuple[str | None, str | None]:
    """(label, None) unless the text after the verdict corrects it (rule 4)."""
    winner = LABELS[label][0]
    later = {_label_of(m) for m in _ANY_LABEL_RE.finditer(after)}
    if other := sorted(lb for lb in later if LABELS[lb][0] != winner):
        return None, f"verdict corrected after it: [[{label}]] is followed by [[{other[-1]}]]"
    if preferred_positions(after, bare_letters=True, overall=True) - {winner}:
        return None, f"verdict corrected after it: the text after [[{label}]] prefers another"
    if (cue := revision_cue(after)) is not None:
        return None, f"verdict corrected after it: {cue!r} follows [[{label}]]"
    return label, None


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
