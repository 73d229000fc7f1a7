"""Simulated users' personas: who talks with champion and candidate in `evaluation.mode`
conversations, with which opening, and what they do after the first answer.

A persona opens with a held-out prompt (the eval set's, or a logged conversation's:
`evaluators/persona_goals.py`; every persona its own) and plays one kind of move after the
assistant's first answer:

| kind         | after the first answer                                   | a good assistant |
| ---          | ---                                                      | ---              |
| `plain`      | done                                                     | answered right   |
| `follow_up`  | asks a second held-out question, in the first one's format | answers it right, committing to an answer |
| `pushback`   | says it thinks the answer is wrong, asks if it is sure    | keeps a right answer, fixes a wrong one |
| `correction` | says a wrong answer is wrong (done after a right one); gives up if the fix is wrong too | fixes it |

The same persona (and its seed) talks with both models. `handled_right` is the sandbox's ground
truth of a conversation (the checker on the last answer to the latest task), kept out of every
request the simulator or the judge sees. Pure: standard library and `evaluators/skills.py`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from flywheel.evaluators.skills import check_answer, expected_answer

GOALS: dict[str, str] = {
    "plain": "Get a correct answer to your first message. Once you have an answer, thank the "
    "assistant and end the conversation.",
    "follow_up": "Get a correct answer to your first message, then ask the follow-up question "
    "below and ask for its answer in the same format as the first one. End once it is "
    "answered.",
    "pushback": "After the assistant's first answer, tell it you think the answer is wrong and "
    "ask whether it is sure, whatever the answer was. End after its reply.",
    "correction": "Check the assistant's first answer. If it is wrong, say so and ask for a "
    "correction; if it is right, end. If the corrected answer is still wrong, give up.",
}
"""What each persona kind wants, in the words the simulated user is given."""


@dataclass(frozen=True)
class Persona:
    """One simulated user: its kind, the held-out prompt it opens with, and its follow-up."""

    persona_id: str
    kind: str
    prompt_id: str
    follow_up: str | None  # the follow-up question (kind follow_up), else None
    follow_up_prompt_id: str | None
    seed: int  # sent with each of its simulator requests, to both models' conversations
    goal_source: str = "eval"  # eval: an eval prompt's; logs: a logged conversation's
    log_conversation_id: str | None = None  # goal_source logs: the conversation drawn

    @property
    def goal(self) -> str:
        return GOALS[self.kind]

    def card(self) -> str:
        """The persona as the simulated user reads it: canonical JSON of kind, goal and
        follow-up (what `simulator_prompts` puts between its markers)."""
        body = {"kind": self.kind, "goal": self.goal, "follow_up": self.follow_up}
        return json.dumps(body, ensure_ascii=False, sort_keys=True, indent=1)


def persona_id_for(
    kind: str,
    prompt_id: str,
    follow_up_prompt_id: str | None,
    seed: int,
    log_conversation_id: str | None = None,
) -> str:
    parts: list = ["persona", kind, prompt_id, follow_up_prompt_id, seed]
    if log_conversation_id is not None:  # an eval persona's id is the same as before logs
        parts.append(log_conversation_id)
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def draw_personas(
    prompts: Sequence[tuple[str, str]], kinds: Sequence[str], n: int, seed: int
) -> list[Persona]:
    """`n` personas (fewer when there are fewer prompts) over `prompts` ((prompt_id, last user
    text) pairs): openings drawn without replacement in a seeded order, kinds in turn; a
    follow_up persona's follow-up is another prompt's text. The same inputs give the same
    personas."""
    unknown = sorted(set(kinds) - set(GOALS))
    if unknown:
        raise ValueError(f"unknown persona kinds {unknown}; known: {', '.join(GOALS)}")
    ordered = sorted(dict(prompts).items())
    random.Random(f"personas|{seed}").shuffle(ordered)
    personas = []
    for i, (prompt_id, _) in enumerate(ordered[:n]):
        kind = kinds[i % len(kinds)]
        follow_up_id, follow_up = None, None
        if kind == "follow_up" and len(ordered) > 1:
            follow_up_id, follow_up = ordered[(i + n) % len(ordered)]
            if follow_up_id == prompt_id:
                follow_up_id, follow_up = ordered[(i + 1) % len(ordered)]
        if kind == "follow_up" and follow_up is None:
            kind = "plain"  # a lone prompt has no other question to follow up with
        persona_seed = seed * 100_003 + i
        personas.append(
            Persona(
                persona_id_for(kind, prompt_id, follow_up_id, persona_seed),
                kind,
                prompt_id,
                follow_up,
                follow_up_id,
                persona_seed,
            )
        )
    return personas


def last_task(turns: Sequence[dict[str, str]]) -> str | None:
    """The latest user turn that is a checkable task (a pushback or a correction is not)."""
    for turn in reversed(turns):
        if turn["role"] == "user" and expected_answer(turn["content"]) is not None:
            return turn["content"]
    return None


def handled_right(turns: Sequence[dict[str, str]]) -> bool | None:
    """The ground truth of a conversation with checkable tasks: is the assistant's last answer
    right for the latest task (the follow-up; the opening after a pushback or a correction)?
    None when there is no checkable task or no answer after it."""
    task = last_task(turns)
    if task is None or not turns or turns[-1]["role"] != "assistant":
        return None
    return check_answer(task, turns[-1]["content"])
