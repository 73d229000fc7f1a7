"""The log tables' contracts (migration 012) on literal rows."""

from __future__ import annotations

from pathlib import Path

from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.pool.logs_literal_rows import LOG_LITERAL_ROWS
from tests.warehouse.literal_rows import LITERAL_ROWS, write_literal_round


def write_log_rows(con) -> dict[str, int]:
    return {
        table: insert_new(con, table, rows, NATURAL_KEYS[table])
        for table, rows in LOG_LITERAL_ROWS.items()
    }


def test_log_tables_contracts_hold_on_literal_rows(tmp_path: Path) -> None:
    with connect(tmp_path / "w.duckdb") as con:
        write_literal_round(con)  # LITERAL_ROWS holds the log tables' rows too
        write_log_rows(con)
        counts = {
            t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in LOG_LITERAL_ROWS
        }
        # the warehouse's literal rows add a second logged answer mined into feedback rows
        assert counts == {table: len(LITERAL_ROWS[table]) for table in LOG_LITERAL_ROWS}
        assert contract_violations(con) == []
        assert sum(write_log_rows(con).values()) == 0  # written twice: stored once


def test_feedback_on_an_unknown_conversation_breaks_its_contract(tmp_path: Path) -> None:
    with connect(tmp_path / "w.duckdb") as con:
        write_literal_round(con)
        write_log_rows(con)
        con.execute("update feedback set conversation_id = 'gone' where feedback_id = 'fb2'")
        con.execute("insert into log_turns select * from log_turns limit 1")
        violations = contract_violations(con)
    assert "feedback.conversation_id: 1 rows reference no log_conversations.conversation_id" in (
        violations
    )
    assert any(v.startswith("log_turns:") and "more than once" in v for v in violations)
