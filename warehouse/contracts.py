"""Each table's contract: its natural key is unique, required columns are set, references resolve.

`contract_violations(con)` checks the whole warehouse and returns one line per broken rule;
an empty list means every contract holds. Required columns are read from the schema itself
(`not null`), keys and references are declared here.
"""

from __future__ import annotations

import duckdb

NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "rounds": ("round_id",),
    "prompts": ("prompt_id",),
    "prompt_occurrences": ("file_sha256", "line_no"),
    "model_versions": ("version_id",),
    "llm_calls": ("call_id",),
    "responses": ("response_id",),
    "battles": ("battle_id",),
    "judgments": ("judgment_id",),
    "sft_examples": ("example_id",),
    "preference_pairs": ("pair_id",),
    "kto_examples": ("example_id",),
    "training_runs": ("run_id",),
    "evaluations": ("evaluation_id",),
    "ratings": ("round_id", "model_id"),
    "battle_selection": ("round_id", "prompt_id", "model_a", "model_b"),
    "general_checks": ("round_id", "version_id"),
    "sim_personas": ("persona_id",),
    "sim_conversations": ("conversation_id",),
    "sim_turns": ("conversation_id", "turn_index"),
    "log_files": ("file_sha256",),
    "log_conversations": ("conversation_id",),
    "log_turns": ("conversation_id", "turn_index"),
    "feedback": ("feedback_id",),
    "feedback_reads": ("conversation_id", "turn_index", "classifier_version"),
}

# (table, column) -> (referenced table, referenced column); a null reference is allowed
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("prompt_occurrences", "prompt_id"): ("prompts", "prompt_id"),
    ("prompts", "duplicate_of"): ("prompts", "prompt_id"),
    ("prompts", "contaminated_by"): ("prompts", "prompt_id"),
    ("model_versions", "parent_id"): ("model_versions", "version_id"),
    ("model_versions", "training_run_id"): ("training_runs", "run_id"),
    ("responses", "prompt_id"): ("prompts", "prompt_id"),
    ("responses", "call_id"): ("llm_calls", "call_id"),
    ("battles", "prompt_id"): ("prompts", "prompt_id"),
    ("battle_selection", "prompt_id"): ("prompts", "prompt_id"),
    ("battles", "response_a_id"): ("responses", "response_id"),
    ("battles", "response_b_id"): ("responses", "response_id"),
    ("judgments", "battle_id"): ("battles", "battle_id"),
    ("judgments", "call_id"): ("llm_calls", "call_id"),
    ("sft_examples", "battle_id"): ("battles", "battle_id"),
    ("sft_examples", "response_id"): ("responses", "response_id"),
    ("sft_examples", "target_call_id"): ("llm_calls", "call_id"),
    ("preference_pairs", "battle_id"): ("battles", "battle_id"),
    ("preference_pairs", "chosen_response_id"): ("responses", "response_id"),
    ("preference_pairs", "rejected_response_id"): ("responses", "response_id"),
    ("kto_examples", "prompt_id"): ("prompts", "prompt_id"),
    ("kto_examples", "response_id"): ("responses", "response_id"),
    ("kto_examples", "battle_id"): ("battles", "battle_id"),
    ("sft_examples", "conversation_id"): ("log_conversations", "conversation_id"),
    ("preference_pairs", "chosen_conversation_id"): ("log_conversations", "conversation_id"),
    ("preference_pairs", "rejected_conversation_id"): ("log_conversations", "conversation_id"),
    ("kto_examples", "conversation_id"): ("log_conversations", "conversation_id"),
    ("training_runs", "base_version"): ("model_versions", "version_id"),
    ("training_runs", "output_version"): ("model_versions", "version_id"),
    ("evaluations", "candidate"): ("model_versions", "version_id"),
    ("evaluations", "champion"): ("model_versions", "version_id"),
    ("evaluations", "round_id"): ("rounds", "round_id"),
    ("general_checks", "round_id"): ("rounds", "round_id"),
    ("general_checks", "version_id"): ("model_versions", "version_id"),
    ("sim_personas", "prompt_id"): ("prompts", "prompt_id"),
    ("sim_personas", "follow_up_prompt_id"): ("prompts", "prompt_id"),
    ("sim_conversations", "persona_id"): ("sim_personas", "persona_id"),
    ("sim_turns", "conversation_id"): ("sim_conversations", "conversation_id"),
    ("sim_turns", "call_id"): ("llm_calls", "call_id"),
    ("sim_turns", "response_id"): ("responses", "response_id"),
    ("log_conversations", "file_sha256"): ("log_files", "file_sha256"),
    ("log_conversations", "prompt_id"): ("prompts", "prompt_id"),
    ("log_turns", "conversation_id"): ("log_conversations", "conversation_id"),
    ("feedback", "conversation_id"): ("log_conversations", "conversation_id"),
    ("feedback", "file_sha256"): ("log_files", "file_sha256"),
    ("feedback", "call_id"): ("llm_calls", "call_id"),
    ("feedback_reads", "conversation_id"): ("log_conversations", "conversation_id"),
    ("feedback_reads", "call_id"): ("llm_calls", "call_id"),
}


def required_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_name = ? and is_nullable = 'NO' and table_catalog = current_database() "
        "order by ordinal_position",
        [table],
    ).fetchall()
    return [name for (name,) in rows]


def duplicate_keys(con: duckdb.DuckDBPyConnection, table: str) -> int:
    key = ", ".join(NATURAL_KEYS[table])
    return con.execute(
        f"select count(*) from (select {key} from {table} group by {key} having count(*) > 1)"
    ).fetchone()[0]


def dangling_references(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    target_table, target_column = REFERENCES[(table, column)]
    return con.execute(
        f"select count(*) from {table} as s where s.{column} is not null and not exists "
        f"(select 1 from {target_table} as t where t.{target_column} = s.{column})"
    ).fetchone()[0]


def contract_violations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """One line per broken contract in the whole warehouse; empty when all hold."""
    violations: list[str] = []
    for table in NATURAL_KEYS:
        n_duplicates = duplicate_keys(con, table)
        if n_duplicates:
            violations.append(
                f"{table}: {n_duplicates} keys {NATURAL_KEYS[table]} appear more than once"
            )
        for column in required_columns(con, table):
            n_null = con.execute(f"select count(*) from {table} where {column} is null").fetchone()[
                0
            ]
            if n_null:
                violations.append(f"{table}.{column}: {n_null} rows are null")
    for table, column in REFERENCES:
        n_dangling = dangling_references(con, table, column)
        if n_dangling:
            target = ".".join(REFERENCES[(table, column)])
            violations.append(f"{table}.{column}: {n_dangling} rows reference no {target}")
    return violations
