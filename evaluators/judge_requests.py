"""Judge requests: building the messages that ask a judge to compare two answers, and reading
them back.

The judge sees the conversation (system prompt and every turn, whitespace kept; a lone user
turn is shown as its text, more turns each after a `[Role turn <boundary>]` marker, and a
note says how many of the oldest turns were cut to fit `judge.max_context_chars`, by the one
rule of `evaluators/context.py`) and two answers to its last user turn, shown as Assistant A (the
answer shown first) and Assistant B (shown second), in the template of the prompt version
(`evaluators/protocols/`). Every battle is judged in both orders (`evaluators/games.py`
combines them).

Delimiters: the question and both answers are wrapped in marker lines carrying a boundary
token, the first 16 hex digits of a SHA-256 over (prompt version, the conversation, both
answers). Text inside an answer cannot know the hash of itself, so it cannot close its block
early or pose as the question or as a turn; `read_judge_request` recovers the turns and both
answers exactly and checks the token.

Conversation judging (`evaluation.conversations`): `build_conversation_judge_messages` shows the
user's goal and two whole conversations, each between its own markers with the same boundary
token (a hash over the version, the goal and both conversations), every turn after a turn
marker; `read_conversation_judge_request` reads them back exactly.

Pure: standard library only (and context.py for the context budget).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from flywheel.evaluators.context import content_chars, fit_conversation
from flywheel.evaluators.protocols import CONVERSATION_PROMPTS, JUDGE_PROMPTS, judge_prompt

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


def read_conversation(block: str, boundary: str) -> tuple[Conversation, int] | None:
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
    """The judge request within `max_context_chars` (see `context.py` for the one rule:
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
        read = read_conversation(m.group("question"), boundary)
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
class ConversationJudgeRequest:
    """What a request built by `build_conversation_judge_messages` holds, read back exactly:
    the user's goal and both conversations (A: shown first)."""

    version: str
    goal: str
    first: Conversation
    second: Conversation


def conversation_boundary(
    version: str, goal: str, first: Conversation, second: Conversation
) -> str:
    """The boundary token of a conversation judge request: a hash over everything it wraps."""
    turns = [[[m["role"], m["content"]] for m in c] for c in (first, second)]
    text = json.dumps([version, goal, turns], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:BOUNDARY_HEX_DIGITS]


def build_conversation_judge_messages(
    goal: str, first: Conversation, second: Conversation, version: str
) -> list[dict[str, str]]:
    """The messages asking the judge to compare two whole conversations (first shown as A),
    in the template of a conversation protocol version (`CONVERSATION_PROMPTS`)."""
    prompt = CONVERSATION_PROMPTS[version]
    boundary = conversation_boundary(version, goal, first, second)
    user = prompt.user_template.format(
        goal=goal,
        conversation_first=render_conversation(as_conversation(first), 0, boundary),
        conversation_second=render_conversation(as_conversation(second), 0, boundary),
        boundary=boundary,
    )
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


_CONVERSATION_REGEXES: dict[str, re.Pattern[str]] = {
    version: _template_regex(prompt.user_template)
    for version, prompt in CONVERSATION_PROMPTS.items()
}


def read_conversation_judge_request(messages: list[dict]) -> ConversationJudgeRequest | None:
    """The goal and both conversations of a request built by
    `build_conversation_judge_messages`; None for anything else (an unknown version, an
    edited text, a boundary that does not match)."""
    texts = system_and_user(messages)
    if texts is None:
        return None
    for version, prompt in CONVERSATION_PROMPTS.items():
        if texts[0] != prompt.system:
            continue
        m = _CONVERSATION_REGEXES[version].fullmatch(texts[1])
        if m is None:
            return None
        boundary = m.group("boundary")
        first = read_conversation(m.group("conversation_first"), boundary)
        second = read_conversation(m.group("conversation_second"), boundary)
        if first is None or second is None:
            return None
        goal = m.group("goal")
        if boundary != conversation_boundary(version, goal, first[0], second[0]):
            return None
        return ConversationJudgeRequest(version, goal, first[0], second[0])
    return None
