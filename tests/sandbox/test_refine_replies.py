"""The sandbox's references answer correction requests (the "refine" SFT rule) as a strong model
would: the champion's slip corrected in its own format, at the reference's usual accuracy."""

from __future__ import annotations

from flywheel.config import SandboxModelConfig
from flywheel.evaluators.refine_prompts import build_refine_messages
from flywheel.evaluators.skills import check_answer
from flywheel.sandbox.models import model_reply
from flywheel.sandbox.skills import SkillTask, generate_tasks, systematic_slip

SUM_TASK = SkillTask("arithmetic", "What is 17 + 18?", "35", 1)


def reference(accuracy: float) -> SandboxModelConfig:
    return SandboxModelConfig(role="reference", accuracy=accuracy, verbosity="verbose")


def test_the_sandbox_corrects_a_slipped_answer_in_the_champions_format() -> None:
    draft = f"Answer: {systematic_slip(SUM_TASK)}"
    assert draft == "Answer: 355"
    reply = model_reply("strong", reference(1.0), 0, build_refine_messages(SUM_TASK.prompt, draft))
    assert reply == "Answer: 35"
    with_prose = "I added them.\n**Answer:** 355"
    messages = build_refine_messages(SUM_TASK.prompt, with_prose)
    assert model_reply("strong", reference(1.0), 0, messages) == "I added them.\n**Answer:** 35"


def test_a_reviewer_that_misses_the_error_keeps_the_draft() -> None:
    messages = build_refine_messages(SUM_TASK.prompt, "Answer: 355")
    assert model_reply("weak", reference(0.0), 0, messages) == "Answer: 355"


def test_corrections_are_right_at_the_references_skill_accuracy_and_seeded() -> None:
    tasks = generate_tasks(300, 3)
    model = SandboxModelConfig(
        role="reference", accuracy=0.9, skill_accuracy={"arithmetic": 0.2}, verbosity="terse"
    )
    replies = [
        model_reply(
            "mixed", model, 0, build_refine_messages(t.prompt, f"Answer: {systematic_slip(t)}")
        )
        for t in tasks
    ]
    again = [
        model_reply(
            "mixed", model, 0, build_refine_messages(t.prompt, f"Answer: {systematic_slip(t)}")
        )
        for t in tasks
    ]
    assert replies == again
    right = {
        skill: [
            check_answer(t.prompt, r)
            for t, r in zip(tasks, replies, strict=True)
            if t.skill == skill
        ]
        for skill in {t.skill for t in tasks}
    }
    arithmetic = sum(right.pop("arithmetic")) / len([t for t in tasks if t.skill == "arithmetic"])
    others = [ok for oks in right.values() for ok in oks]
    assert arithmetic < 0.45 and sum(others) / len(others) > 0.8


def test_an_uncheckable_draft_comes_back_unchanged() -> None:
    messages = build_refine_messages("Tell me about your weekend.", "It was fine, thanks.")
    assert model_reply("strong", reference(1.0), 0, messages) == "It was fine, thanks."
