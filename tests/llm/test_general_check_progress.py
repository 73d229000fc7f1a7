"""The general check's progress: each item scored, then each answered, as (done, total); its
greedy replies, generated batch by batch for that, are the ones a single call would give."""

from __future__ import annotations

from flywheel.llm.checkpoints import LocalGenerator
from flywheel.llm.general_check import greedy_replies, measure_general_set
from tests.llm.test_general_check import SMALL_SET, tiny_checkpoint  # noqa: F401


def test_the_general_check_reports_items_scored_then_answered(tiny_checkpoint) -> None:  # noqa: F811
    seen: list[tuple[int, int]] = []
    measure_general_set(
        tiny_checkpoint,
        max_new_tokens=4,
        device="cpu",
        generate_batch_size=4,
        general_set=SMALL_SET,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(6, 12), (10, 12), (12, 12)]  # one NLL batch of 8; replies 4 + 2


def test_replies_batch_by_batch_equal_one_call(tiny_checkpoint) -> None:  # noqa: F811
    generator = LocalGenerator.load(tiny_checkpoint, "cpu")
    conversations = [item.messages for item in SMALL_SET.items]
    batches: list[int] = []
    one_by_one = greedy_replies(generator, conversations, 6, batch_size=4, on_batch=batches.append)
    at_once = generator.generate(conversations, max_new_tokens=6, batch_size=4)
    assert [r.text for r in one_by_one] == [r.text for r in at_once]
    assert batches == [4, 6]
