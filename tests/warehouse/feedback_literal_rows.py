"""The literal round's rows mined from users' feedback, beside its battle rows: extra rows per
table that tests/warehouse/literal_rows.py adds to its own."""

from __future__ import annotations

from tests.pool.logs_literal_rows import ADDED_AT, LOG_LITERAL_ROWS

FEEDBACK_LITERAL_ROWS: dict[str, list[dict]] = {}
# mined rows from users' feedback beside the battle rows: on the logs' conversation c1 (prompt p1,
# answer turn 1, thumb fb1) and a second logged answer to p1, c2, whose thumb is down
FEEDBACK_LITERAL_ROWS["log_conversations"] = [
    {
        **LOG_LITERAL_ROWS["log_conversations"][0],
        "conversation_id": "c2",
        "external_id": "chatcmpl-2",
        "line_no": 2,
    },
]
FEEDBACK_LITERAL_ROWS["log_turns"] = [
    {"conversation_id": "c2", "turn_index": 0, "role": "user", "content": "What is 2 + 3?"},
    {"conversation_id": "c2", "turn_index": 1, "role": "assistant", "content": "Answer: 6"},
]
FEEDBACK_LITERAL_ROWS["feedback"] = [
    {
        "feedback_id": "fb3",
        "conversation_id": "c2",
        "turn_index": 1,
        "source": "explicit",
        "kind": "thumb",
        "label": "negative",
        "value": "down",
        "file_sha256": "lf1",
        "line_no": 2,
        "created_at": ADDED_AT,
    },
    {
        "feedback_id": "fb4",
        "conversation_id": "c2",
        "turn_index": 1,
        "source": "explicit",
        "kind": "correction",
        "label": "negative",
        "correction": "2 + 3 = 5.",
        "file_sha256": "lf1",
        "line_no": 2,
        "created_at": ADDED_AT,
    },
]
# the classifier read c2's answer and found no feedback in what followed
FEEDBACK_LITERAL_ROWS["feedback_reads"] = [
    {
        "conversation_id": "c2",
        "turn_index": 1,
        "classifier_version": "implicit-feedback-v1",
        "outcome": "none",
        "call_id": "c2",
        "created_at": ADDED_AT,
    }
]
FEEDBACK_LITERAL_ROWS["sft_examples"] = [
    {
        "example_id": "s-fb",
        "round_id": 1,
        "prompt_id": "p1",
        "source_model": "r1-sft",
        "rule_kind": "sft",
        "target_source": "feedback",
        "origin": "feedback",
        "conversation_id": "c1",
        "turn_index": 1,
        "feedback_ids": ["fb1"],
    },
]
FEEDBACK_LITERAL_ROWS["preference_pairs"] = [
    {
        "pair_id": "d-fb",
        "kind": "dpo",
        "round_id": 1,
        "prompt_id": "p1",
        "chosen_model": "r1-sft",
        "rejected_model": "r1-sft",
        "rule_kind": "dpo",
        "origin": "feedback",
        "chosen_conversation_id": "c1",
        "chosen_turn_index": 1,
        "rejected_conversation_id": "c2",
        "rejected_turn_index": 1,
        "chosen_feedback_ids": ["fb1"],
        "rejected_feedback_ids": ["fb3"],
        "chosen_source": "feedback",
    },
    # c2's answer corrected by its user: the correction chosen over the answer it corrects
    {
        "pair_id": "d-fix",
        "kind": "dpo",
        "round_id": 1,
        "prompt_id": "p1",
        "rejected_model": "r1-sft",
        "rule_kind": "dpo",
        "origin": "feedback",
        "chosen_conversation_id": "c2",
        "chosen_turn_index": 1,
        "rejected_conversation_id": "c2",
        "rejected_turn_index": 1,
        "chosen_feedback_ids": ["fb4", "fb3"],
        "rejected_feedback_ids": ["fb4", "fb3"],
        "chosen_source": "correction",
    },
]
FEEDBACK_LITERAL_ROWS["kto_examples"] = [
    {
        "example_id": "k-fb",
        "source": "feedback",
        "round_id": 1,
        "prompt_id": "p1",
        "label": True,
        "source_model": "r1-sft",
        "n_battles": 0,
        "conversation_id": "c1",
        "turn_index": 1,
        "feedback_ids": ["fb1"],
    },
]
