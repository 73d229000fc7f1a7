"""Where a simulated user's goal comes from (`evaluation.conversations.goals`): held-out eval
prompts (`evaluators/personas.draw_personas`), or conversations from the production logs.

A logged conversation gives its opening prompt (in the pool, kept only when it is not in a
training slice nor a near-duplicate of one: `tasks/conversation_goals.py` checks that before
drawing) and, where the log says it, what the user did after the first answer:

| the logged user after the first answer                 | persona kind  | its follow-up       |
| ---                                                      | ---           | ---                 |
| negative feedback on it (a thumb down, a correction, a complaint, a repeat; explicit or classified) | `correction` | - |
| a next turn without negative feedback on the answer      | `follow_up`   | that turn's text    |
| nothing more                                             | `plain`       | -                   |

`pushback` is never drawn from logs: it stresses a right answer, which a log cannot tell.
A logged goal whose kind is not in `evaluation.conversations.personas` is not drawn.

`goals`: eval (every persona from eval prompts), logs (personas from the logs first, the rest
from eval prompts when the logs have too few), both (up to half from the logs). Openings never
repeat: a battle is one per (round, opening prompt). The same inputs give the same personas.
Pure: standard library and `evaluators/personas.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flywheel.evaluators.personas import Persona, draw_personas, persona_id_for

GoalSource = Literal["eval", "logs", "both"]
GOAL_SOURCES: tuple[GoalSource, ...] = ("eval", "logs", "both")


@dataclass(frozen=True)
class LoggedOpening:
    """A logged conversation a simulated user's goal may be drawn from."""

    conversation_id: str
    prompt_id: str  # its opening prompt in the pool
    next_user_turn: str | None  # the user's turn after the first answer; None: none logged
    first_answer_negative: bool  # negative feedback (explicit or classified) on the first answer


def logged_kind(opening: LoggedOpening) -> str:
    """The persona kind that plays what the logged user did after the first answer."""
    if opening.first_answer_negative:
        return "correction"
    if opening.next_user_turn:
        return "follow_up"
    return "plain"


def log_persona_seed(seed: int, conversation_id: str) -> int:
    """A persona seed of its own per logged conversation (fits `sim_personas.seed`)."""
    digest = hashlib.sha256(f"log-persona|{seed}|{conversation_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 2**31


def draw_rank(seed: int, conversation_id: str) -> str:
    """A logged conversation's place in the seeded draw: its own hash, so conversations logged
    later move the draw only where they rank among the first `n` (a resumed round whose logs
    grew keeps most of its personas)."""
    return hashlib.sha256(f"log-personas|{seed}|{conversation_id}".encode()).hexdigest()


def draw_log_personas(
    openings: Sequence[LoggedOpening], kinds: Sequence[str], n: int, seed: int
) -> list[Persona]:
    """Up to `n` personas from logged conversations: one per opening prompt (its first
    conversation by id), those whose logged kind is in `kinds`, in a seeded order
    (`draw_rank`)."""
    first_per_prompt: dict[str, LoggedOpening] = {}
    for opening in sorted(openings, key=lambda o: o.conversation_id):
        first_per_prompt.setdefault(opening.prompt_id, opening)
    allowed = [o for o in first_per_prompt.values() if logged_kind(o) in kinds]
    allowed.sort(key=lambda o: draw_rank(seed, o.conversation_id))
    personas = []
    for opening in allowed[:n]:
        kind = logged_kind(opening)
        persona_seed = log_persona_seed(seed, opening.conversation_id)
        follow_up = opening.next_user_turn if kind == "follow_up" else None
        personas.append(
            Persona(
                persona_id_for(
                    kind, opening.prompt_id, None, persona_seed, opening.conversation_id
                ),
                kind,
                opening.prompt_id,
                follow_up,
                None,
                persona_seed,
                goal_source="logs",
                log_conversation_id=opening.conversation_id,
            )
        )
    return personas


def draw_goal_personas(
    eval_prompts: Sequence[tuple[str, str]],
    openings: Sequence[LoggedOpening],
    kinds: Sequence[str],
    n: int,
    seed: int,
    source: GoalSource,
) -> list[Persona]:
    """`n` personas (fewer when there is too little material) from `source` (module doc):
    the logged ones first, then eval ones over the eval prompts no logged one opens with."""
    if source not in GOAL_SOURCES:
        raise ValueError(f"unknown goal source {source!r}; known: {', '.join(GOAL_SOURCES)}")
    n_logs = {"eval": 0, "logs": n, "both": n // 2}[source]
    logged = draw_log_personas(openings, kinds, n_logs, seed) if n_logs else []
    taken = {p.prompt_id for p in logged}
    rest = [(pid, text) for pid, text in eval_prompts if pid not in taken]
    return logged + draw_personas(rest, kinds, n - len(logged), seed)
