"""The sandbox's classifier reads the user's next turn like a model: by its cues, never by the
traffic's ground truth, and errs in seeded, realistic ways."""

from __future__ import annotations

import random

import pytest

from flywheel.config import SandboxModelConfig
from flywheel.evaluators.feedback_classifier import label_checked, parse_classifier_reply
from flywheel.evaluators.feedback_prompts import build_classifier_messages
from flywheel.sandbox import classifier_replies
from flywheel.sandbox.models import model_reply
from flywheel.sandbox.skills import generate_task

QUESTION = "What is 17 + 25? End your reply with a line of the form Answer: followed by the result."
NEW_TASK = "Please help me with this. How many 't' letters does \"turtle\" contain? Thanks!"
JUDGE = SandboxModelConfig(role="judge", malformed_rate=0.0)


def classify(user_turn: str, model: SandboxModelConfig = JUDGE, answer: str = "Answer: 43"):
    turns = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]
    reply = model_reply("sandbox-judge", model, 0, build_classifier_messages(turns, user_turn))
    return label_checked(parse_classifier_reply(reply), user_turn)


@pytest.fixture
def exact(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MISS_RATE", "STRAY_CUE_RATE", "DESCRIBED_QUOTE_RATE"):
        monkeypatch.setattr(classifier_replies, name, 0.0)
    confusions = {c: (c, 0.0) for c in classifier_replies.CONFUSIONS}
    monkeypatch.setattr(classifier_replies, "CONFUSIONS", confusions)


@pytest.mark.parametrize(
    ("user_turn", "category", "quote"),
    [
        (
            "No, that's wrong. The answer is 42.",
            "correction",
            "No, that's wrong. The answer is 42.",
        ),
        ("Not quite: it should be 42.", "correction", "Not quite: it should be 42."),
        (
            "I think you made a mistake, it's 42.",
            "correction",
            "I think you made a mistake, it's 42.",
        ),
        (
            "This answer is not correct, try harder.",
            "complaint",
            "This answer is not correct, try harder.",
        ),
        (
            "Hmm, that doesn't look right at all.",
            "complaint",
            "Hmm, that doesn't look right at all.",
        ),
        ("What do you mean? Can you show how you got that?", "clarification", "What do you mean?"),
        ("I don't follow. Could you explain the steps?", "clarification", "I don't follow."),
        (f"Let me ask again: {QUESTION}", "repeat", "Let me ask again:"),
        (QUESTION.replace("What is", "Tell me"), "repeat", "Tell me 17 + 25?"),
        ("Perfect, thank you.", "positive", "Perfect, thank you."),
        (f"Thanks, that's right! {NEW_TASK}", "positive", "Thanks, that's right!"),
        (NEW_TASK, None, None),
        (
            'Rewrite "meadow" with its letters sorted from a to z. No need to explain much.',
            None,
            None,
        ),
        ("ok", None, None),
    ],
)
def test_the_classifier_reads_the_cues_of_the_users_turn(
    exact: None, user_turn: str, category: str | None, quote: str | None
) -> None:
    reading = classify(user_turn)
    assert (reading.parse_ok, reading.category, reading.quote) == (True, category, quote)


def test_a_reply_is_the_same_for_the_same_request() -> None:
    assert classify("That's wrong.") == classify("That's wrong.")


def test_the_classifier_errs_at_realistic_seeded_rates() -> None:
    rng = random.Random(0)
    outcomes: dict[str, int] = {}
    for i in range(400):
        task = generate_task("arithmetic", rng, 1)
        turn = f"No, that's wrong. The answer is {task.answer}."
        reading = classify(turn, answer=f"Answer: {i}")
        key = reading.category or ("unparsed" if not reading.parse_ok else "dropped or none")
        outcomes[key] = outcomes.get(key, 0) + 1
    assert 0.7 * 400 <= outcomes.get("correction", 0) <= 0.95 * 400
    assert outcomes.get("complaint", 0) > 0  # a proposed answer overlooked, now and then
    assert outcomes.get("dropped or none", 0) > 0  # missed, or a described quote dropped


def test_a_malformed_rate_makes_unreadable_replies() -> None:
    always = SandboxModelConfig(role="judge", malformed_rate=1.0)
    assert not classify("That's wrong.", always).parse_ok
