"""Literal logged conversations with feedback, for the feedback mining tests.

Eight conversations on the pool prompt `p_q` ("What is 2 + 3?") and one on an eval prompt:

| conversation | answer (turn) | feedback | label |
| --- | --- | --- | --- |
| c_up | "5" (1) | explicit thumb up | positive |
| c_down | "6" (1) | explicit thumb down | negative |
| c_fix | "7" (1) | explicit correction "2 + 3 = 5." | negative, corrected |
| c_conflict | "8" (1) | explicit up and explicit down | conflict: left out |
| c_wins | "5!" (1) | explicit up, implicit complaint 0.95 | positive (explicit wins) |
| c_unsure | "9" (1) | implicit complaint 0.5 | none (below 0.7) |
| c_multi | "5" (1), "10" (3) | implicit positive 0.9 on turn 3 | positive, in context |
| c_eval | "4" (1) | explicit thumb up | none (eval prompt) |

Started in the table's order (c_up first), so the same-prompt pairs are (c_up, c_down) and
(c_wins, c_fix)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from flywheel.config import Config
from flywheel.warehouse.store import connect_warehouse
from flywheel.warehouse.writes import insert_new
from tests.tasks.test_mine import prompt_row

DAY = datetime(2026, 11, 2, 9, 0)
QUESTION = "question p_q"  # prompt_row's text for p_q
FOLLOW_UP = "Now times 2?"

# conversation -> (prompt, its turns after the question, the feedback on its turns)
CONVERSATIONS: dict[str, tuple[str, list[tuple[str, str]], list[dict]]] = {
    "c_up": ("p_q", [("assistant", "5")], [{"turn_index": 1, "label": "positive"}]),
    "c_down": ("p_q", [("assistant", "6")], [{"turn_index": 1, "label": "negative"}]),
    "c_fix": (
        "p_q",
        [("assistant", "7")],
        [
            {
                "turn_index": 1,
                "kind": "correction",
                "label": "negative",
                "category": "correction",
                "correction": "2 + 3 = 5.",
            }
        ],
    ),
    "c_conflict": (
        "p_q",
        [("assistant", "8")],
        [{"turn_index": 1, "label": "positive"}, {"turn_index": 1, "label": "negative"}],
    ),
    "c_wins": (
        "p_q",
        [("assistant", "5!")],
        [
            {"turn_index": 1, "label": "positive"},
            {"turn_index": 1, "source": "implicit", "category": "complaint", "confidence": 0.95},
        ],
    ),
    "c_unsure": (
        "p_q",
        [("assistant", "9")],
        [{"turn_index": 1, "source": "implicit", "category": "complaint", "confidence": 0.5}],
    ),
    "c_multi": (
        "p_q",
        [("assistant", "5"), ("user", FOLLOW_UP), ("assistant", "10")],
        [{"turn_index": 3, "source": "implicit", "category": "positive", "confidence": 0.9}],
    ),
    "c_eval": ("p_eval", [("assistant", "4")], [{"turn_index": 1, "label": "positive"}]),
}


def feedback_row(conversation_id: str, n: int, given: dict) -> dict:
    source = given.get("source", "explicit")
    row = {
        "feedback_id": f"f-{conversation_id}-{n}",
        "conversation_id": conversation_id,
        "source": source,
        "kind": given.get("kind", "thumb" if source == "explicit" else "classified"),
        "created_at": DAY,
    }
    if source == "implicit":
        row |= {"quote": "hmm", "classifier_version": "implicit-feedback-v1"}
        row["label"] = "positive" if given["category"] == "positive" else "negative"
    return row | {k: v for k, v in given.items() if k not in ("source", "kind")}


def log_rows(conversations: dict[str, tuple], first_minute: int = 0) -> dict[str, list[dict]]:
    """The log_files, log_conversations, log_turns and feedback rows of `conversations`."""
    rows: dict[str, list[dict]] = {"log_conversations": [], "log_turns": [], "feedback": []}
    for minute, (conversation_id, (prompt_id, turns, feedback)) in enumerate(
        conversations.items(), start=first_minute
    ):
        question = f"question {prompt_id}"
        all_turns = [("user", question), *turns]
        rows["log_conversations"].append(
            {
                "conversation_id": conversation_id,
                "source": "app",
                "log_format": "messages",
                "model": "v0",
                "started_at": DAY + timedelta(minutes=minute),
                "n_turns": len(all_turns),
                "prompt_id": prompt_id,
                "file_sha256": "lf-day",
                "line_no": minute + 1,
                "added_at": DAY,
            }
        )
        rows["log_turns"] += [
            {"conversation_id": conversation_id, "turn_index": i, "role": role, "content": text}
            for i, (role, text) in enumerate(all_turns)
        ]
        rows["feedback"] += [feedback_row(conversation_id, n, f) for n, f in enumerate(feedback)]
    return rows


LOG_FILE = {
    "file_sha256": "lf-day",
    "path": "/logs/day.jsonl",
    "source": "app",
    "bytes_read": 100,
    "lines_read": 8,
    "resumed_from": 0,
    "n_records": 8,
    "n_conversations": 8,
    "n_feedback": 9,
    "n_malformed": 0,
    "n_redacted": 0,
    "redactions": json.dumps({}),
    "added_at": DAY,
}


def add_logs(config: Config, conversations: dict[str, tuple], first_minute: int = 0) -> None:
    """Store `conversations` as a day's logs read (after the pool took their prompts)."""
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "log_files", [LOG_FILE], ["file_sha256"])
        for table, rows in log_rows(conversations, first_minute).items():
            insert_new(con, table, rows)


def add_logged_feedback(config: Config) -> Config:
    """The prompts and the day's logs above, in the config's warehouse."""
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "prompts", [prompt_row("p_q"), prompt_row("p_eval", split="eval")])
    add_logs(config, CONVERSATIONS)
    return config


@pytest.fixture
def logged_feedback(smoke_config: Config) -> Config:
    """The smoke warehouse with the prompts and the day's logs above."""
    return add_logged_feedback(smoke_config)
