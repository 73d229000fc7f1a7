"""The pairwise judge: versioned prompts, request building, verdict parsing, game combining.

Protocol (Arena Learning / MT-Bench pairwise): the judge sees the conversation (system
prompt and every turn, whitespace kept; a lone user turn is shown as its text, more turns
each after a `[Role turn <boundary>]` marker, and a note says how many of the oldest turns
were cut to fit `judge.max_context_chars`) and two answers to its last user turn, shown as
Assistant A (the answer shown first) and Assistant B (shown second), and replies

    Scores: <A's score> <B's score>        integers 1-10
    Explanation: <one or two sentences>
    Verdict: [[A]]                         [[A]] A better, [[B]] B better, [[C]] tie

That is version `v1`; the other versions of `evaluators/judge_prompts.py` ask for Arena-Hard's
five labels, MT-bench's pair labels or a JSON object, and `parse_reply` reads each protocol
into the same `Verdict` (winner, scores where given, label strength where given). With a
judge panel, `aggregate_verdicts` makes one verdict of a game's several.

Every battle is judged in both orders (game AB shows model A first, game BA shows model B
first); `combine_games` un-swaps the positions and combines the two games into a battle.

Delimiters: the question and both answers are wrapped in marker lines carrying a boundary
token, the first 16 hex digits of a SHA-256 over (prompt version, the conversation, both
answers).
Text inside an answer cannot know the hash of itself, so it cannot close its block early or
pose as the question or as a turn; `read_judge_request` recovers the turns and both
answers exactly and checks the token.

Verdict parsing (`parse_verdict`), never raises, never guesses. It reads the reply's
`final_text`: `<think>...</think>` blocks removed (an unclosed `<think>` is a draft to the
end, a lone `</think>` ends one), full-width forms folded (`：` `［［A］］` `【A】`).
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
4. Scores (`find_scores`), the first layout found: the last `Scores:` line with a pair
   (`8 3`, `8, 3`, `8/10 and 3/10`, `(8, 3)`, `8 - 3`, `A: 8, B: 3`) or a lone `Scores:`
   line followed by `Assistant 1: 10` / `Assistant 2: 4` (or A/B); else one labelled score
   per answer anywhere (`Assistant A score: 8/10`, `A: 8, B: 3`; two different values for
   one answer are ambiguous: none), or exactly two unlabelled `Score: 8/10` lines (A's
   first); else a first line that is only a pair. Half points are kept. The verdict is
   authoritative: scores are kept only when they are within 1-10 and agree with it (the
   winner's score is not below the loser's; a tie's scores differ by at most 1). Otherwise
   the verdict stands with both scores None and `error` saying why (out of range,
   contradicting, missing), so the game still counts for win rates but gives no score gap
   to mining (counted per round: `n_decisive_without_gap`).
A Verdict with parse_ok False has winner and scores None and the reason in `error`.

Pure: standard library only (and evaluators.skills for the verifier judge, llm.context for
the context budget).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from flywheel.evaluators.judge_prompts import JUDGE_PROMPTS, judge_prompt
from flywheel.evaluators.skills import check_answer
from flywheel.llm.context import content_chars, fit_conversation

Winner = Literal["first", "second", "tie"]
Outcome = Literal["win", "loss", "tie", "inconsistent", "unparsed"]

SCORE_MIN, SCORE_MAX = 1.0, 10.0
TIE_MAX_SCORE_DIFF = 1.0
"""A tie verdict's two scores may differ by at most this much and still be kept."""
VERIFIER_SCORE_RIGHT, VERIFIER_SCORE_WRONG = 9.0, 2.0
BOUNDARY_HEX_DIGITS = 16


Conversation = list[dict[str, str]]


def _conversation_key(conversation: Conversation, n_turns_dropped: int) -> str:
    """What the boundary hashes for the question block: a lone user turn's text (as in
    version v1 before conversations), else canonical JSON of the turns and the cut."""
    if is_single_question(conversation, n_turns_dropped):
        return conversation[0]["content"]
    turns = [[m["role"], m["content"]] for m in conversation]
    return json.dumps([n_turns_dropped, turns], ensure_ascii=False, separators=(",", ":"))


def is_single_question(conversation: Conversation, n_turns_dropped: int = 0) -> bool:
    """True for one user turn and nothing cut: the question block holds just its text."""
    return n_turns_dropped == 0 and len(conversation) == 1 and conversation[0]["role"] == "user"


def request_boundary(
    version: str,
    question: str | Conversation,
    answer_first: str,
    answer_second: str,
    n_turns_dropped: int = 0,
) -> str:
    """The boundary token of one request: hex digits of a hash over everything it wraps."""
    conversation = as_conversation(question)
    key = _conversation_key(conversation, n_turns_dropped)
    text = "\x00".join((version, key, answer_first, answer_second))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:BOUNDARY_HEX_DIGITS]


def as_conversation(question: str | Conversation) -> Conversation:
    """A question text as one user turn; chat turns as {role, content} dicts."""
    if isinstance(question, str):
        return [{"role": "user", "content": question}]
    return [{"role": m["role"], "content": m["content"]} for m in question]


def _cut_note(n_turns_dropped: int, boundary: str) -> str:
    return (
        f"[{n_turns_dropped} earlier turns of this conversation were cut to fit the judge's "
        f"context; shown are the system prompt and the latest turns {boundary}]"
    )


def _turn_marker(role: str, boundary: str) -> str:
    return f"[{role.capitalize()} turn {boundary}]"


def render_conversation(conversation: Conversation, n_turns_dropped: int, boundary: str) -> str:
    """The question block: a lone user turn as its text; otherwise a note on the turns cut
    (if any), then every turn after a marker line `[Role turn <boundary>]`, text verbatim."""
    if is_single_question(conversation, n_turns_dropped):
        return conversation[0]["content"]
    lines = [_cut_note(n_turns_dropped, boundary)] if n_turns_dropped else []
    for turn in conversation:
        lines += [_turn_marker(turn["role"], boundary), turn["content"]]
    return "\n".join(lines)


def _read_conversation(block: str, boundary: str) -> tuple[Conversation, int] | None:
    """(turns, n cut) from a question block rendered with `boundary`; None if malformed."""
    token = re.escape(boundary)
    if not re.search(rf"^\[\w+ turn {token}\]$", block, re.MULTILINE):
        return [{"role": "user", "content": block}], 0
    n_dropped = 0
    cut = re.match(rf"\[([0-9]+) earlier turns of this conversation .*? {token}\]\n", block)
    if cut is not None:
        n_dropped, block = int(cut.group(1)), block[cut.end() :]
    pieces = re.split(rf"(?:^|\n)\[(\w+) turn {token}\]\n", block)
    if pieces[0] != "" or len(pieces) < 3:
        return None
    turns = [
        {"role": role.lower(), "content": content}
        for role, content in zip(pieces[1::2], pieces[2::2], strict=True)
    ]
    return turns, n_dropped


def build_judge_messages(
    question: str | Conversation,
    answer_first: str,
    answer_second: str,
    version: str = "v1",
    n_turns_dropped: int = 0,
) -> list[dict[str, str]]:
    """The chat messages asking the judge to compare two answers (first shown as A).

    `question` is the user's text, or the whole conversation the answers reply to (system
    prompt and every turn, whitespace kept); `n_turns_dropped` earlier turns were cut from it
    (the judge is told so).
    """
    prompt = judge_prompt(version)
    conversation = as_conversation(question)
    boundary = request_boundary(version, conversation, answer_first, answer_second, n_turns_dropped)
    user = prompt.user_template.format(
        question=render_conversation(conversation, n_turns_dropped, boundary),
        answer_first=answer_first,
        answer_second=answer_second,
        boundary=boundary,
    )
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


def fit_judge_messages(
    conversation: Conversation,
    answer_first: str,
    answer_second: str,
    version: str,
    max_context_chars: int | None,
) -> tuple[list[dict[str, str]], int]:
    """The judge request within `max_context_chars` (see `llm.context` for the one rule:
    keep the system prompt and the latest turns, drop the oldest), and the turns dropped."""

    def measure(kept: Conversation, n_dropped: int) -> int:
        built = build_judge_messages(kept, answer_first, answer_second, version, n_dropped)
        return content_chars(built)

    fitted = fit_conversation(conversation, max_context_chars, measure)
    messages = build_judge_messages(
        fitted.messages, answer_first, answer_second, version, fitted.n_turns_dropped
    )
    return messages, fitted.n_turns_dropped


def _template_regex(template: str) -> re.Pattern[str]:
    """A regex matching a filled template; each placeholder becomes a named group."""
    pattern, seen = [], set()
    for i, piece in enumerate(re.split(r"\{(\w+)\}", template)):
        if i % 2 == 0:
            pattern.append(re.escape(piece))
        elif piece in seen:
            pattern.append(f"(?P={piece})")
        else:
            seen.add(piece)
            body = f"[0-9a-f]{{{BOUNDARY_HEX_DIGITS}}}" if piece == "boundary" else ".*?"
            pattern.append(f"(?P<{piece}>{body})")
    return re.compile("".join(pattern), re.DOTALL)


_TEMPLATE_REGEXES: dict[str, re.Pattern[str]] = {
    version: _template_regex(prompt.user_template) for version, prompt in JUDGE_PROMPTS.items()
}


@dataclass(frozen=True)
class JudgeRequest:
    """What a request built by `build_judge_messages` holds, read back exactly."""

    version: str
    conversation: Conversation
    n_turns_dropped: int
    answer_first: str
    answer_second: str

    @property
    def question(self) -> str:
        """The last user turn: what the answers reply to."""
        users = [m["content"] for m in self.conversation if m["role"] == "user"]
        return users[-1] if users else ""


def system_and_user(messages: list[dict]) -> tuple[str, str] | None:
    """The texts of a [system, user] message pair (how flywheel's own requests are built);
    None for anything else."""
    if not isinstance(messages, list) or len(messages) != 2:
        return None
    system, user = messages
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return None
    if system.get("role") != "system" or user.get("role") != "user":
        return None
    return system["content"], user["content"]


def read_judge_request(messages: list[dict]) -> JudgeRequest | None:
    """The request's parts, from messages built by `build_judge_messages`.

    None unless the system message is a known version's and the user message fills its
    template with a boundary token that matches the recovered texts.
    """
    texts = system_and_user(messages)
    if texts is None:
        return None
    system_text, user_text = texts
    for version, prompt in JUDGE_PROMPTS.items():
        if system_text != prompt.system:
            continue
        m = _TEMPLATE_REGEXES[version].fullmatch(user_text)
        if m is None:
            continue
        boundary = m.group("boundary")
        read = _read_conversation(m.group("question"), boundary)
        if read is None:
            return None
        conversation, n_dropped = read
        first, second = m.group("answer_first"), m.group("answer_second")
        if boundary != request_boundary(version, conversation, first, second, n_dropped):
            return None
        return JudgeRequest(version, conversation, n_dropped, first, second)
    return None


def parse_judge_request(messages: list[dict]) -> tuple[str, str, str] | None:
    """(last user turn, first, second) from a request built by `build_judge_messages`."""
    parsed = read_judge_request(messages)
    return None if parsed is None else (parsed.question, parsed.answer_first, parsed.answer_second)


@dataclass(frozen=True)
class Verdict:
    """One judged game, parsed: who won by position, and each position's 1-10 score.

    parse_ok False: no usable verdict (winner and scores None, reason in `error`).
    parse_ok True with `error` set: the verdict stands but the scores were dropped.
    `strength`: how strongly a five-label verdict prefers the winner (2 for `A>>B`, 1 for
    `A>B`, 0 for `A=B`); None when the label does not say (`[[A]]`).
    """

    parse_ok: bool
    winner: Winner | None
    score_first: float | None
    score_second: float | None
    error: str | None
    strength: float | None = None


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
_LINE_START = r"^[\s>*#_\-•]*"
_LINE_END = r"[\s*_.!]*$"
_VERDICT_LINE_RE = re.compile(
    rf"{_LINE_START}(?P<kind>final\s+|draft\s+|preliminary\s+|initial\s+)?verdict[\s*_]*:"
    rf"[\s*_]*(?:{_DOUBLE}|{_SINGLE}){_LINE_END}",
    re.IGNORECASE,
)
_FINAL_SENTENCE_RE = re.compile(
    rf"{_LINE_START}(?:my\s+)?final\s+(?:verdict|decision|answer)\b(?P<between>[^\[\]\n]*?)"
    rf"(?:{_DOUBLE}|{_SINGLE}){_LINE_END}",
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
_THINK_BLOCK_RE = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_WIDE_BRACKETS = str.maketrans({"【": "[", "】": "]", "〔": "[", "〕": "]", "〖": "[", "〗": "]"})


def _failed(reason: str) -> Verdict:
    return Verdict(parse_ok=False, winner=None, score_first=None, score_second=None, error=reason)


def final_text(text: str) -> str:
    """The part of a reply that holds its final answer: `<think>...</think>` blocks removed
    (an unclosed `<think>` drafts to the end; a lone `</think>` ends a draft), full-width
    forms folded (NFKC: `：` `［` `］` `（` `）` full-width digits; `【】` become `[]`)."""
    text = _THINK_BLOCK_RE.sub("", text)
    lowered = text.lower()
    if "</think>" in lowered:
        text = text[lowered.rindex("</think>") + len("</think>") :]
    elif "<think>" in lowered:
        text = text[: lowered.index("<think>")]
    return unicodedata.normalize("NFKC", text).translate(_WIDE_BRACKETS)


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


def _find_label(text: str) -> tuple[str | None, str | None]:
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


# --- scores ---------------------------------------------------------------------------
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_OUT_OF = r"(?:\s*/\s*10(?:\.0)?)?"
_PAIR = (
    rf"\(?\s*(?P<x>{_NUMBER}){_OUT_OF}\s*(?:,|;|-|\band\b|\bvs\.?|\s)\s*"
    rf"(?P<y>{_NUMBER}){_OUT_OF}\s*\)?"
)
_WHO_A = r"(?:assistant\s*)?(?:A|1)(?:'s)?(?:\s+score)?"
_WHO_B = r"(?:assistant\s*)?(?:B|2)(?:'s)?(?:\s+score)?"
_LABELLED_PAIR = (
    rf"{_WHO_A}\s*[:=]\s*(?P<x>{_NUMBER}){_OUT_OF}\s*[,;]?\s*(?:and\s+)?"
    rf"{_WHO_B}\s*[:=]\s*(?P<y>{_NUMBER}){_OUT_OF}"
)
_SCORES_HEAD = rf"{_LINE_START}scores?[\s*_]*:[\s*_]*"
_SCORES_PAIR_RES = (
    re.compile(rf"{_SCORES_HEAD}{_LABELLED_PAIR}{_LINE_END}", re.IGNORECASE),
    re.compile(rf"{_SCORES_HEAD}{_PAIR}{_LINE_END}", re.IGNORECASE),
)
_SCORES_ALONE_RE = re.compile(rf"{_SCORES_HEAD}{_LINE_END}", re.IGNORECASE)
_LABELLED_PAIR_LINE_RE = re.compile(rf"{_LINE_START}{_LABELLED_PAIR}{_LINE_END}", re.IGNORECASE)
_BARE_PAIR_LINE_RE = re.compile(rf"{_LINE_START}{_PAIR}{_LINE_END}", re.IGNORECASE)
_ONE_SCORE_RE = re.compile(
    rf"{_LINE_START}(?:(?:score\s+(?:of|for)\s+)?(?:assistant\s*)?(?P<who>A|B|1|2)(?:'s)?"
    rf"(?:\s+score)?|score)[\s*_]*:[\s*_]*(?P<v>{_NUMBER}){_OUT_OF}{_LINE_END}",
    re.IGNORECASE,
)


def _pair(m: re.Match[str]) -> tuple[float, float]:
    return float(m.group("x")), float(m.group("y"))


def _scores_block(lines: list[str]) -> tuple[float, float] | None:
    """The last `Scores:` line with a pair, or a lone `Scores:` followed by one labelled
    line per answer (`Assistant 1: 10` / `Assistant 2: 4`)."""
    found: tuple[float, float] | None = None
    for i, line in enumerate(lines):
        if m := _SCORES_PAIR_RES[0].match(line) or _SCORES_PAIR_RES[1].match(line):
            found = _pair(m)
        elif _SCORES_ALONE_RE.match(line):
            following = [ln for ln in lines[i + 1 :] if ln.strip()][:2]
            parsed = [_ONE_SCORE_RE.match(ln) for ln in following]
            whos = [p.group("who") for p in parsed if p is not None and p.group("who")]
            if len(whos) == 2 and {w.upper() for w in whos} in ({"A", "B"}, {"1", "2"}):
                by_who = {p.group("who").upper(): float(p.group("v")) for p in parsed if p}
                found = (by_who.get("A", by_who.get("1")), by_who.get("B", by_who.get("2")))  # type: ignore[assignment]
    return found


def _labelled_scores(lines: list[str]) -> tuple[float, float] | None:
    """One labelled score per answer anywhere (`Assistant A score: 8/10`, `A: 8, B: 3`), or
    exactly two unlabelled `Score: 8/10` lines (A's first); None when absent or ambiguous."""
    values: dict[str, set[float]] = {"first": set(), "second": set()}
    unlabelled: list[float] = []
    for line in lines:
        if m := _LABELLED_PAIR_LINE_RE.match(line):
            x, y = _pair(m)
            values["first"].add(x)
            values["second"].add(y)
        elif m := _ONE_SCORE_RE.match(line):
            who, value = m.group("who"), float(m.group("v"))
            if who is None:
                unlabelled.append(value)
            else:
                values["first" if who.upper() in ("A", "1") else "second"].add(value)
    if len(values["first"]) == 1 and len(values["second"]) == 1:
        return values["first"].pop(), values["second"].pop()
    if not values["first"] and not values["second"] and len(unlabelled) == 2:
        return unlabelled[0], unlabelled[1]
    return None


def find_scores(text: str) -> tuple[float, float] | None:
    """(score of the answer shown first, of the second) in the layouts judges write, tried in
    this order: a `Scores:` block (the last), labelled scores per answer, a first line that is
    only a pair (`8 3`, `(8, 3)`, `8 - 3`). `text` is a reply's `final_text`."""
    lines = text.splitlines()
    found = _scores_block(lines) or _labelled_scores(lines)
    if found is None:
        first_line = next((ln for ln in lines if ln.strip()), "")
        if m := _BARE_PAIR_LINE_RE.match(first_line):
            found = _pair(m)
    return found


def _scores_problem(winner: Winner, first: float, second: float) -> str | None:
    for score in (first, second):
        if not SCORE_MIN <= score <= SCORE_MAX:
            return f"scores dropped: {first:g} {second:g} out of range 1-10"
    contradicts = {
        "first": first < second,
        "second": second < first,
        "tie": abs(first - second) > TIE_MAX_SCORE_DIFF,
    }[winner]
    if contradicts:
        return f"scores dropped: {first:g} {second:g} contradict verdict {winner}"
    return None


def parse_verdict(text: str) -> Verdict:
    """Parse a judge reply (see the module doc for the exact rules); never raises."""
    if not isinstance(text, str) or not text.strip():
        return _failed("empty reply")
    final = final_text(text)
    label, reason = _find_label(final)
    if label is None:
        return _failed(reason or "no verdict")
    winner, strength = LABELS[label]
    scores = find_scores(final)
    if scores is None:
        return Verdict(True, winner, None, None, "scores missing: no `Scores: X Y` line", strength)
    problem = _scores_problem(winner, *scores)
    if problem is not None:
        return Verdict(True, winner, None, None, problem, strength)
    return Verdict(True, winner, scores[0], scores[1], None, strength)


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
        return _failed(f"conflicting verdicts in JSON objects: {', '.join(sorted(winners))}")
    last = objects[-1]
    winner = _JSON_VERDICTS.get(str(last.get("verdict")).strip().upper())
    if winner is None:
        return _failed(f"JSON verdict must be A, B or tie (got {last.get('verdict')!r})")
    first, second = _json_score(last.get("score_a")), _json_score(last.get("score_b"))
    if first is None or second is None:
        return Verdict(True, winner, None, None, "scores missing: JSON score_a/score_b not numbers")
    problem = _scores_problem(winner, first, second)
    if problem is not None:
        return Verdict(True, winner, None, None, problem)
    return Verdict(True, winner, first, second, None)


def parse_reply(text: str, version: str = "v1") -> Verdict:
    """Parse a judge reply by the protocol of its prompt version; never raises.

    - scores (`v1`): `parse_verdict`.
    - json: `parse_json_verdict`, else (no JSON object) `parse_verdict` on the text.
    - five-labels, pair: `parse_verdict`; no scores are asked for, so none are missing; a
      decisive label without a strength (`[[A]]`) has strength 1, a tie 0.
    An unknown version is read as `v1`.
    """
    prompt = JUDGE_PROMPTS.get(version)
    protocol = prompt.protocol if prompt is not None else "scores"
    if protocol == "json":
        verdict = parse_json_verdict(text)
        if verdict is not None:
            return verdict
    verdict = parse_verdict(text)
    if protocol in ("five-labels", "pair") and verdict.parse_ok:
        error = verdict.error
        if error is not None and error.startswith("scores missing"):
            error = None
        strength = verdict.strength
        if strength is None:
            strength = 0 if verdict.winner == "tie" else 1
        verdict = replace(verdict, error=error, strength=strength)
    return verdict


PanelAggregate = Literal["majority", "mean"]


def _mean_of(values: list[float]) -> float:
    return sum(values) / len(values)


def aggregate_verdicts(verdicts: Sequence[Verdict], how: PanelAggregate = "majority") -> Verdict:
    """One game's verdict from a judge panel's verdicts on it (one verdict: itself).

    - Fewer than half of the verdicts parsed: unparsed (the panel did not answer).
    - mean: when every parsed verdict kept its scores, the mean score per position, and the
      higher mean wins (equal means: tie). Otherwise as majority.
    - majority: the winner more than half of the parsed verdicts name; its scores are the
      means over those verdicts that kept scores, its strength the mean of theirs (None if
      one has none). No such winner: a tie without scores ("panel split").
    """
    if len(verdicts) == 1:
        return verdicts[0]
    parsed = [v for v in verdicts if v.parse_ok]
    if 2 * len(parsed) < len(verdicts):
        return _failed(f"panel: {len(verdicts) - len(parsed)} of {len(verdicts)} verdicts unparsed")
    scored = [v for v in parsed if v.score_first is not None and v.score_second is not None]
    if how == "mean" and scored and len(scored) == len(parsed):
        first = _mean_of([v.score_first for v in scored])  # type: ignore[misc]
        second = _mean_of([v.score_second for v in scored])  # type: ignore[misc]
        winner: Winner = "first" if first > second else "second" if second > first else "tie"
        return Verdict(True, winner, first, second, None)
    counts = {w: sum(v.winner == w for v in parsed) for w in ("first", "second", "tie")}
    top = max(counts, key=lambda w: counts[w])
    if 2 * counts[top] <= len(parsed):
        return Verdict(True, "tie", None, None, "panel split: no winner named by a majority", 0)
    agreeing = [v for v in parsed if v.winner == top]
    kept = [v for v in agreeing if v.score_first is not None and v.score_second is not None]
    first_score = _mean_of([v.score_first for v in kept]) if kept else None  # type: ignore[misc]
    second_score = _mean_of([v.score_second for v in kept]) if kept else None  # type: ignore[misc]
    strengths = [v.strength for v in agreeing]
    strength = None if None in strengths else _mean_of(strengths)  # type: ignore[arg-type]
    error = None if kept else "scores missing: no panel judge in the majority kept scores"
    return Verdict(True, top, first_score, second_score, error, strength)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BattleOutcome:
    """One battle (both games combined), from model A's side, with mean 1-10 scores."""

    outcome: Outcome
    score_a: float | None
    score_b: float | None
    score_gap: float | None
    label_strength: float | None = None  # mean of both games' label strengths, where given


def _winner_for_a(winner: Winner | None, a_shown_first: bool) -> Literal["a", "b", "tie"] | None:
    if winner is None or winner == "tie":
        return winner
    return "a" if (winner == "first") == a_shown_first else "b"


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def combine_games(ab: Verdict, ba: Verdict) -> BattleOutcome:
    """Combine game AB (model A shown first) and game BA (model B shown first).

    - unparsed: either game has parse_ok False (no scores either).
    - win / loss / tie: both games name A, both name B, both say tie.
    - inconsistent: one game names A and the other B (position decided it).
    - a win in one order and a tie in the other is a tie: a win must survive the swap, as
      the judge's position bias alone can turn a tie into a win for the answer shown first,
      and mining would then learn from pairs the judge does not really separate.
    Scores are un-swapped and averaged over the games that kept their scores (None if
    neither did); score_gap = |score_a - score_b|. label_strength (a win or loss whose two
    games both gave a strength): their mean, so `A>>B` twice is 2 and `A>>B` with `A>B` is
    1.5; a tie's is 0; None when a game gave none.
    """
    if not (ab.parse_ok and ba.parse_ok):
        return BattleOutcome("unparsed", None, None, None)
    score_a = _mean([ab.score_first, ba.score_second])
    score_b = _mean([ab.score_second, ba.score_first])
    gap = abs(score_a - score_b) if score_a is not None and score_b is not None else None
    winners = {_winner_for_a(ab.winner, True), _winner_for_a(ba.winner, False)}
    if winners == {"a", "b"}:
        outcome: Outcome = "inconsistent"
    elif "a" in winners and "b" not in winners:
        outcome = "win" if winners == {"a"} else "tie"
    elif "b" in winners:
        outcome = "loss" if winners == {"b"} else "tie"
    else:
        outcome = "tie"
    strengths = [ab.strength, ba.strength]
    strength = None
    if outcome in ("win", "loss", "tie") and None not in strengths:
        strength = 0.0 if outcome == "tie" else sum(strengths) / 2  # type: ignore[arg-type]
    return BattleOutcome(outcome, score_a, score_b, gap, strength)


def verify_pair(question: str, answer_a: str, answer_b: str) -> BattleOutcome | None:
    """The verifier judge: the skill checker decides (right 9, wrong 2); None if uncheckable."""
    right_a, right_b = check_answer(question, answer_a), check_answer(question, answer_b)
    if right_a is None or right_b is None:
        return None
    score_a = VERIFIER_SCORE_RIGHT if right_a else VERIFIER_SCORE_WRONG
    score_b = VERIFIER_SCORE_RIGHT if right_b else VERIFIER_SCORE_WRONG
    outcome: Outcome = "tie" if right_a == right_b else "win" if right_a else "loss"
    return BattleOutcome(outcome, score_a, score_b, abs(score_a - score_b))
