"""One small round written as literal rows: two prompts, a student, a reference, a judge."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb

from flywheel.warehouse.contracts import NATURAL_KEYS
from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.pool.logs_literal_rows import LOG_LITERAL_ROWS
from tests.warehouse.feedback_literal_rows import FEEDBACK_LITERAL_ROWS

ADDED_AT = datetime(2026, 11, 1, 2, 0)
QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]
OTHER_QUESTION = [{"role": "user", "content": "Reverse the word cat."}]

LITERAL_ROWS: dict[str, list[dict]] = {
    "rounds": [
        {
            "round_id": 1,
            "stage": "sft",
            "slice_id": 1,
            "status": "done",
            "champion_before": "v0",
            "champion_after": "r1-sft",
            "candidate": "r1-sft",
            "promoted": True,
            "wall_s": 12.5,
        },
    ],
    "prompts": [
        {
            "prompt_id": "p1",
            "messages": json.dumps(QUESTION),
            "prompt_text": "What is 2 + 3?",
            "source": "literal",
            "category": "arithmetic",
            "split": "pool",
            "slice_id": 1,
            "status": "active",
            "n_chars": 14,
            "added_at": ADDED_AT,
        },
        {
            "prompt_id": "p2",
            "messages": json.dumps(OTHER_QUESTION),
            "prompt_text": "Reverse the word cat.",
            "source": "literal",
            "category": "reverse_word",
            "split": "eval",
            "status": "active",
            "n_chars": 21,
            "added_at": ADDED_AT,
        },
    ],
    "prompt_occurrences": [
        {
            "file_sha256": "f1",
            "line_no": 1,
            "prompt_id": "p1",
            "source": "literal",
            "file_path": "a.jsonl",
            "added_at": ADDED_AT,
        },
    ],
    "model_versions": [
        {"version_id": "v0", "stage": "base", "checkpoint_path": "runs/v0", "status": "retired"},
        {
            "version_id": "r1-sft",
            "parent_id": "v0",
            "round_id": 1,
            "stage": "sft",
            "checkpoint_path": "runs/r1-sft",
            "status": "champion",
            "training_run_id": "t1",
        },
    ],
    "training_runs": [
        {
            "run_id": "t1",
            "round_id": 1,
            "stage": "sft",
            "base_version": "v0",
            "output_version": "r1-sft",
            "status": "done",
            "n_examples": 1,
            "first_loss": 3.0,
            "last_loss": 1.0,
            "wall_s": 4.0,
        },
    ],
    "llm_calls": [
        {
            "call_id": "c1",
            "endpoint": "strong",
            "model": "sandbox-strong",
            "request_json": json.dumps({"messages": QUESTION}),
            "response_text": "Answer: 5",
            "prompt_tokens": 6,
            "completion_tokens": 2,
            "latency_ms": 3.0,
            "cost_usd": 0.0,
            "n_attempts": 1,
            "round_id": 1,
        },
        {
            "call_id": "c2",
            "endpoint": "judge",
            "model": "sandbox-judge",
            "request_json": json.dumps({"messages": []}),
            "response_text": "Verdict: [[B]]",
            "n_attempts": 1,
            "round_id": 1,
        },
    ],
    "responses": [
        {
            "response_id": "r-v0-p1",
            "prompt_id": "p1",
            "model_id": "v0",
            "sample_idx": 0,
            "round_id": 1,
            "response_text": "Answer: 6",
        },
        {
            "response_id": "r-strong-p1",
            "prompt_id": "p1",
            "model_id": "ref:strong",
            "sample_idx": 0,
            "round_id": 1,
            "response_text": "Answer: 5",
            "call_id": "c1",
        },
    ],
    "battles": [
        {
            "battle_id": "b1",
            "round_id": 1,
            "prompt_id": "p1",
            "purpose": "train",
            "model_a": "v0",
            "model_b": "ref:strong",
            "response_a_id": "r-v0-p1",
            "response_b_id": "r-strong-p1",
            "judge": "judge",
            "score_a": 2.0,
            "score_b": 9.0,
            "score_gap": 7.0,
            "outcome": "loss",
        },
    ],
    "judgments": [
        {
            "judgment_id": "j1",
            "battle_id": "b1",
            "round_id": 1,
            "game_order": "AB",
            "judge": "judge",
            "prompt_version": "v1",
            "raw_text": "Verdict: [[B]]",
            "score_first": 2.0,
            "score_second": 9.0,
            "verdict": "second",
            "parse_ok": True,
            "call_id": "c2",
        },
    ],
    "sft_examples": [
        {
            "example_id": "s1",
            "round_id": 1,
            "prompt_id": "p1",
            "battle_id": "b1",
            "response_id": "r-strong-p1",
            "source_model": "ref:strong",
            "rule_kind": "sft",
            "rule_min_gap": 3.0,
            "score_gap": 7.0,
        },
    ],
    "preference_pairs": [
        {
            "pair_id": "d1",
            "kind": "dpo",
            "round_id": 1,
            "prompt_id": "p1",
            "battle_id": "b1",
            "chosen_response_id": "r-strong-p1",
            "rejected_response_id": "r-v0-p1",
            "chosen_model": "ref:strong",
            "rejected_model": "v0",
            "rule_kind": "dpo",
            "rule_min_gap": 2.0,
            "score_gap": 7.0,
        },
        {
            "pair_id": "m1",
            "kind": "rm",
            "round_id": 1,
            "prompt_id": "p1",
            "battle_id": "b1",
            "chosen_response_id": "r-strong-p1",
            "rejected_response_id": "r-v0-p1",
            "chosen_model": "ref:strong",
            "rejected_model": "v0",
            "rule_kind": "rm",
            "rule_min_gap": 2.0,
            "score_gap": 7.0,
        },
    ],
    "evaluations": [
        {
            "evaluation_id": "e1",
            "round_id": 1,
            "candidate": "r1-sft",
            "champion": "v0",
            "n_prompts": 1,
            "wins": 1,
            "ties": 0,
            "losses": 0,
            "n_excluded": 0,
            "win_rate": 1.0,
            "win_rate_ci_low": 0.8,
            "win_rate_ci_high": 1.0,
            "sandbox_accuracy_candidate": 0.5,
            "sandbox_accuracy_champion": 0.2,
            "decision": "promote",
            "reason": "literal",
        },
    ],
    "ratings": [
        {"round_id": 1, "model_id": "ref:strong", "rating": 1000.0, "n_battles": 1},
        {"round_id": 1, "model_id": "v0", "rating": 700.0, "n_battles": 1},
    ],
    "battle_selection": [
        {
            "round_id": 1,
            "prompt_id": "p1",
            "model_a": "v0",
            "model_b": "ref:strong",
            "strategy": "uncertain",
            "uncertainty": 0.97,
            "p_reference_wins": 0.41,
            "selected": True,
            "selector": "literal",
        },
    ],
    "general_checks": [
        {
            "round_id": 1,
            "version_id": "v0",
            "n_items": 63,
            "mean_nll": 1.92,
            "collapse_share": 0.0,
            "set_sha256": "g1",
            "wall_s": 31.0,
            "measured_at": ADDED_AT,
        },
        {
            "round_id": 1,
            "version_id": "r1-sft",
            "n_items": 63,
            "mean_nll": 2.01,
            "collapse_share": 0.03,
            "set_sha256": "g1",
            "measured_at": ADDED_AT,
        },
    ],
    "kto_examples": [
        {
            "example_id": "k1",
            "source": "battle",
            "round_id": 1,
            "prompt_id": "p1",
            "response_id": "r-strong-p1",
            "label": True,
            "source_model": "ref:strong",
            "battle_id": "b1",
            "n_battles": 1,
            "score_gap": 7.0,
            "rule_min_gap": 2.0,
        },
        {
            "example_id": "k2",
            "source": "battle",
            "round_id": 1,
            "prompt_id": "p1",
            "response_id": "r-v0-p1",
            "label": False,
            "source_model": "v0",
            "battle_id": "b1",
            "n_battles": 1,
            "score_gap": 7.0,
            "rule_min_gap": 2.0,
        },
    ],
    "sim_personas": [
        {
            "persona_id": "persona-1",
            "kind": "follow_up",
            "prompt_id": "p1",
            "follow_up_prompt_id": "p2",
            "seed": 0,
        },
    ],
    "sim_conversations": [
        {
            "conversation_id": "conv-1",
            "round_id": 1,
            "persona_id": "persona-1",
            "persona_kind": "follow_up",
            "prompt_id": "p1",
            "model_id": "v0",
            "n_user_turns": 2,
            "n_pushbacks": 0,
            "ended_by": "max_turns",
            "simulator": "sim-user",
            "simulator_prompt_version": "sim-user-v1",
            "handled_right": True,
        },
    ],
    "sim_turns": [
        {"conversation_id": "conv-1", "turn_index": 0, "role": "user", "text": "What is 2 + 3?"},
        {
            "conversation_id": "conv-1",
            "turn_index": 1,
            "role": "assistant",
            "text": "Answer: 5",
            "response_id": "r-v0-p1",
        },
        {
            "conversation_id": "conv-1",
            "turn_index": 2,
            "role": "user",
            "text": "Next question: Reverse the word cat.",
            "move": "continue",
            "call_id": "c1",
        },
    ],
    **LOG_LITERAL_ROWS,
}

for table, rows in FEEDBACK_LITERAL_ROWS.items():  # after the logs' own rows
    LITERAL_ROWS[table] = [*LITERAL_ROWS.get(table, []), *rows]


def write_literal_round(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Write every literal row; return rows added per table."""
    return {
        table: insert_new(con, table, rows, NATURAL_KEYS[table])
        for table, rows in LITERAL_ROWS.items()
    }


def fill_warehouse(path: Path, n_prompts: int) -> None:
    """A literal round plus `n_prompts` generated prompts, in the warehouse file at `path`."""
    with connect(path) as con:
        write_literal_round(con)
        con.execute(
            "insert into prompts (prompt_id, messages, prompt_text, source, category, split, "
            "status, n_chars, added_at) select 'g' || i, json_array(json_object('role', 'user', "
            "'content', 'What is ' || i || ' + 1?')), 'What is ' || i || ' + 1?', 'generated', "
            "'arithmetic', 'pool', 'active', 14, timestamp '2026-11-01 02:00' from range(?) t(i)",
            [n_prompts],
        )
