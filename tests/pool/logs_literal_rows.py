"""Literal rows of the log tables (migration 012): one log file read, one conversation of two
turns, one explicit thumb and one implicit label on its answer. `tests/warehouse/literal_rows.py`
adds them to the warehouse's literal rows (its prompt `p1` is the conversation's prompt)."""

from __future__ import annotations

from datetime import datetime

ADDED_AT = datetime(2026, 11, 1, 2, 0)

LOG_LITERAL_ROWS: dict[str, list[dict]] = {
    "log_files": [
        {
            "file_sha256": "lf1",
            "path": "/logs/day1.jsonl",
            "source": "app",
            "bytes_read": 812,
            "lines_read": 2,
            "resumed_from": 0,
            "n_records": 2,
            "n_conversations": 1,
            "n_feedback": 1,
            "n_malformed": 1,
            "n_redacted": 1,
            "redactions": '{"email": 1, "phone": 0, "credit_card": 0, "secret": 0}',
            "added_at": ADDED_AT,
        },
    ],
    "log_conversations": [
        {
            "conversation_id": "c1",
            "source": "app",
            "log_format": "openai-log",
            "external_id": "chatcmpl-1",
            "model": "r1-sft",
            "user_hash": "u1",
            "started_at": ADDED_AT,
            "n_turns": 2,
            "prompt_id": "p1",
            "file_sha256": "lf1",
            "line_no": 1,
            "added_at": ADDED_AT,
        },
    ],
    "log_turns": [
        {"conversation_id": "c1", "turn_index": 0, "role": "user", "content": "What is 2 + 3?"},
        {"conversation_id": "c1", "turn_index": 1, "role": "assistant", "content": "Answer: 5"},
    ],
    "feedback": [
        {
            "feedback_id": "fb1",
            "conversation_id": "c1",
            "turn_index": 1,
            "source": "explicit",
            "kind": "thumb",
            "label": "positive",
            "value": "up",
            "file_sha256": "lf1",
            "line_no": 1,
            "created_at": ADDED_AT,
        },
        {
            "feedback_id": "fb2",
            "conversation_id": "c1",
            "turn_index": 1,
            "source": "implicit",
            "kind": "classified",
            "label": "positive",
            "category": "positive",
            "quote": "thanks",
            "confidence": 0.9,
            "classifier_version": "feedback-v1",
            "created_at": ADDED_AT,
        },
    ],
}
