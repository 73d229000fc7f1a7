"""A day of the sandbox's production traffic: simulated users chat with a model.

`simulate_day(...)` draws `n_conversations` conversations, each from its own generator seeded
with (seed, day, index), so a day is the same whatever else runs:

1. a user (one of `n_users` stable ids) of a persona (`sandbox.traffic_personas`) asks 1-3
   questions about the persona's skills (sandbox skill tasks);
2. the answering model (a sandbox reference model: right with its accuracy, else a plausible
   wrong answer; the round-0 student's or champion's accuracy profile in the demo) answers;
3. the user may give an explicit thumb, and may write a feedback turn (repeat/rephrase,
   correction, complaint, clarification, positive); after a negative one the model answers
   again; a positive one is followed by the next question in the same turn.

Every answer's ground truth is kept apart (`AnswerTruth`): the question, the expected answer
(what the user meant), the answer committed to, whether it was right, the thumb, and the
category of the user's next turn. `sandbox.traffic_formats` writes the logs and, in a separate
folder, the truth (for measurement only: never read by the flywheel).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flywheel.config import SandboxModelConfig
from flywheel.errors import InputError
from flywheel.evaluators.skills import check_answer, extract_final_answer
from flywheel.sandbox.models import reference_reply
from flywheel.sandbox.skills import DIFFICULTIES, SkillTask, generate_task
from flywheel.sandbox.traffic_personas import (
    PERSONAS,
    Persona,
    feedback_category,
    feedback_text,
    persona_for,
    thumb,
)

FIRST_DAY = datetime(2026, 1, 1)  # day 1 of the sandbox's calendar
Answerer = Callable[[list[dict[str, str]], str], str]  # (history, open question) -> reply


@dataclass(frozen=True)
class AnswerTruth:
    """The ground truth of one answer (one assistant turn)."""

    turn_index: int  # position of the answer in the conversation's turns
    skill: str
    question: str
    expected: str  # the right answer: what the user meant
    committed: str | None  # the answer the reply commits to; None: none
    correct: bool | None
    thumb: str | None  # "up" | "down" | None
    next_category: str | None  # the user's next turn: repeat | correction | ... | None


@dataclass
class SimConversation:
    """One simulated conversation: who, when, which model, its turns and its answers' truth."""

    key: str
    persona: Persona
    user_id: str
    started_at: datetime
    model: str
    turns: list[dict[str, str]] = field(default_factory=list)
    answers: list[AnswerTruth] = field(default_factory=list)


def sandbox_answerer(name: str, model: SandboxModelConfig, seed: int) -> Answerer:
    """A sandbox model answering the open question, its draw seeded by the whole history."""

    def answer(history: list[dict[str, str]], question: str) -> str:
        return reference_reply(name, model, seed, [*history, {"role": "user", "content": question}])

    return answer


def default_models(models: dict[str, SandboxModelConfig]) -> tuple[str, str]:
    """(answering model, second model of arena votes): the least and the most accurate
    sandbox reference models (the demo's student plays the champion's part)."""
    references = sorted((m.accuracy, name) for name, m in models.items() if m.role == "reference")
    if not references:
        raise InputError(
            "sandbox.models has no reference model to answer the simulated users. Fix: add "
            "one (role: reference), or pass --model NAME."
        )
    return references[0][1], references[-1][1]


def simulate_day(
    day: int,
    n_conversations: int,
    n_users: int,
    model_name: str,
    answer: Answerer,
    seed: int = 0,
    personas: tuple[Persona, ...] = PERSONAS,
) -> list[SimConversation]:
    """The day's conversations (module doc), its users drawn from `personas`."""
    return [
        simulate_conversation(day, index, n_users, model_name, answer, seed, personas)
        for index in range(n_conversations)
    ]


def simulate_conversation(
    day: int,
    index: int,
    n_users: int,
    model_name: str,
    answer: Answerer,
    seed: int,
    personas: tuple[Persona, ...] = PERSONAS,
) -> SimConversation:
    rng = random.Random(f"traffic:{seed}:{day}:{index}")
    user = rng.randrange(n_users)
    user_rng = random.Random(f"traffic-user:{seed}:{user}")
    persona = persona_for(user_rng, personas)  # a user keeps a persona
    started = FIRST_DAY + timedelta(days=day - 1, seconds=rng.randrange(86400))
    conversation = SimConversation(
        key=f"sandbox-day{day}-{index:06d}",
        persona=persona,
        user_id=f"sandbox-user-{user}",
        started_at=started,
        model=model_name,
    )
    lead = ""
    for _ in range(rng.randint(1, persona.max_questions)):
        task = generate_task(rng.choice(persona.skills), rng, rng.choice(DIFFICULTIES))
        conversation.turns.append({"role": "user", "content": f"{lead}{task.prompt}"})
        lead = _answer_with_feedback(conversation, task, answer, rng)
    if lead:  # a positive turn after the last answer
        conversation.turns.append({"role": "user", "content": lead.strip()})
    return conversation


def _answer_with_feedback(
    conversation: SimConversation, task: SkillTask, answer: Answerer, rng: random.Random
) -> str:
    """Answer the open question, then the user's thumb and feedback turn; a negative turn gets
    one more answer. Returns the text that leads the next question (a positive turn)."""
    persona = conversation.persona
    for attempt in range(2):
        history = conversation.turns[:-1] if attempt == 0 else conversation.turns
        reply = answer(history, task.prompt)
        conversation.turns.append({"role": "assistant", "content": reply})
        committed = extract_final_answer(reply)
        correct = check_answer(task.prompt, reply)
        category = feedback_category(persona, correct, rng) if attempt == 0 else None
        conversation.answers.append(
            AnswerTruth(
                turn_index=len(conversation.turns) - 1,
                skill=task.skill,
                question=task.prompt,
                expected=task.answer,
                committed=committed,
                correct=correct,
                thumb=thumb(persona, correct, committed is not None, rng),
                next_category=category,
            )
        )
        if category is None:
            return ""
        text = feedback_text(category, task.prompt, task.answer, rng)
        if category == "positive":
            return f"{text} "
        conversation.turns.append({"role": "user", "content": text})
    return ""
