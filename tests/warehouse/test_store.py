"""Warehouse contracts, idempotent writes, migrations and the lock-aware connect."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.store import (
    LATEST_SCHEMA_VERSION,
    WarehouseLockedError,
    WarehouseVersionError,
    connect,
    migrate,
    schema_version,
    views_text,
)
from flywheel.warehouse.writes import insert_new
from tests.warehouse.literal_rows import LITERAL_ROWS, write_literal_round

PAIR_VIEW_COLUMNS = [  # v_dpo_pairs and v_rm_pairs, as analysts have always queried them
    "round_id",
    "pair_id",
    "prompt_id",
    "category",
    "prompt",
    "chosen",
    "rejected",
    "chosen_model",
    "rejected_model",
    "battle_id",
    "score_gap",
    "rule_kind",
    "rule_min_gap",
]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "flywheel.duckdb"


def test_every_table_has_a_contract_and_literal_rows(db_path: Path) -> None:
    with connect(db_path) as con:
        tables = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_type = 'BASE TABLE' and table_name != 'schema_version'"
            ).fetchall()
        }
    assert tables == set(NATURAL_KEYS) == set(LITERAL_ROWS)


def test_contracts_hold_on_literal_rows(db_path: Path) -> None:
    with connect(db_path) as con:
        added = write_literal_round(con)
        assert added == {table: len(rows) for table, rows in LITERAL_ROWS.items()}
        assert contract_violations(con) == []


def test_required_column_missing_is_refused(db_path: Path) -> None:
    row = dict(LITERAL_ROWS["battles"][0], battle_id="b2")
    del row["outcome"]
    with connect(db_path) as con, pytest.raises(duckdb.ConstraintException, match="outcome"):
        insert_new(con, "battles", [row], ["battle_id"])


def test_contract_check_finds_duplicate_keys_and_dangling_references(db_path: Path) -> None:
    with connect(db_path) as con:
        write_literal_round(con)
        con.execute("insert into ratings select * from ratings limit 1")
        con.execute("update sft_examples set battle_id = 'missing' where example_id <> 's-fb'")
        violations = contract_violations(con)
    assert any(v.startswith("ratings:") and "more than once" in v for v in violations)
    assert any(
        v.startswith("sft_examples.battle_id: 1 rows reference no battles") for v in violations
    )


def test_writing_a_batch_twice_stores_it_once(db_path: Path) -> None:
    with connect(db_path) as con:
        first = write_literal_round(con)
        second = write_literal_round(con)
        counts = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in NATURAL_KEYS}
    assert sum(first.values()) > 0
    assert sum(second.values()) == 0
    assert counts == first


def test_duplicates_inside_one_batch_keep_the_first_row(db_path: Path) -> None:
    rows = [
        {"round_id": 7, "stage": "sft", "status": "running"},
        {"round_id": 7, "stage": "dpo", "status": "done"},
    ]
    with connect(db_path) as con:
        assert insert_new(con, "rounds", rows, ["round_id"]) == 1
        assert con.execute("select stage from rounds").fetchall() == [("sft",)]


def test_unknown_column_is_refused_with_its_name(db_path: Path) -> None:
    with connect(db_path) as con, pytest.raises(ValueError, match="unknown columns \\['colour'\\]"):
        insert_new(
            con,
            "rounds",
            [{"round_id": 1, "stage": "sft", "status": "x", "colour": 1}],
            ["round_id"],
        )


def test_empty_warehouse_is_migrated_to_the_latest_version(db_path: Path) -> None:
    with connect(db_path) as con:
        assert schema_version(con) == LATEST_SCHEMA_VERSION
        views = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_type = 'VIEW'"
            ).fetchall()
        }
    defined = set(re.findall(r"create or replace view (\w+)", views_text(), re.IGNORECASE))
    assert {"v_round_summary", "v_judge_calibration", "v_model_lineage"} <= defined
    assert views == defined


def test_a_version_2_warehouse_keeps_its_evaluations_under_their_content_ids(
    db_path: Path,
) -> None:
    from flywheel.tasks.evaluate import evaluation_id_for

    con = duckdb.connect(str(db_path))
    assert migrate(con, str(db_path), up_to=2) == 2
    counts = dict.fromkeys(("n_prompts", "wins", "ties", "losses", "n_excluded"), 0)
    rows = [
        {"evaluation_id": f"old-{i}", "round_id": i, "candidate": f"r{i}-sft", "champion": "v0"}
        | counts
        | {"decision": "keep", "reason": "literal"}
        for i in (1, 2)
    ]
    assert insert_new(con, "evaluations", rows, ["evaluation_id"]) == 2
    con.close()
    with connect(db_path) as con:
        stored = con.execute("select evaluation_id from evaluations order by round_id").fetchall()
    assert stored == [(evaluation_id_for(i, f"r{i}-sft", "v0"),) for i in (1, 2)]


def test_a_version_3_warehouse_keeps_every_pair_in_one_table_and_the_views_keep_their_columns(
    db_path: Path,
) -> None:
    con = duckdb.connect(str(db_path))
    assert migrate(con, str(db_path), up_to=3) == 3
    pairs = [r for r in LITERAL_ROWS["preference_pairs"] if r.get("origin", "battle") == "battle"]
    for kind, table in (("dpo", "dpo_pairs"), ("rm", "rm_pairs")):
        rows = [{k: v for k, v in r.items() if k != "kind"} for r in pairs if r["kind"] == kind]
        assert insert_new(con, table, rows, ["pair_id"]) == 1
    con.close()
    with connect(db_path) as con:
        stored = con.execute(
            "select pair_id, kind, rule_kind from preference_pairs order by pair_id"
        ).fetchall()
        columns_after = {
            view: [c for (c, *_) in con.execute(f"describe {view}").fetchall()]
            for view in ("v_dpo_pairs", "v_rm_pairs")
        }
    assert stored == [("d1", "dpo", "dpo"), ("m1", "rm", "rm")]
    # the columns analysts have always queried come first, in their order; later lineage
    # columns (origin, the feedback behind a pair) are appended after them
    kept = {view: columns[: len(PAIR_VIEW_COLUMNS)] for view, columns in columns_after.items()}
    assert kept == {"v_dpo_pairs": PAIR_VIEW_COLUMNS, "v_rm_pairs": PAIR_VIEW_COLUMNS}


def test_previous_version_warehouse_upgrades_and_keeps_its_rows(db_path: Path) -> None:
    con = duckdb.connect(str(db_path))
    assert migrate(con, str(db_path), up_to=1) == 1
    assert insert_new(con, "prompts", LITERAL_ROWS["prompts"], ["prompt_id"]) == 2
    con.close()
    with connect(db_path) as con:
        assert schema_version(con) == LATEST_SCHEMA_VERSION
        assert con.execute("select count(*) from prompts").fetchone()[0] == 2
        assert con.execute("select count(*) from sft_examples").fetchone()[0] == 0


def test_newer_warehouse_is_refused_and_left_untouched(db_path: Path) -> None:
    with connect(db_path) as con:
        con.execute("insert into schema_version values (99, now())")
    with pytest.raises(WarehouseVersionError, match="schema version 99.*upgrade flywheel"):
        with connect(db_path):
            pass
    with pytest.raises(WarehouseVersionError):
        with connect(db_path, read_only=True):
            pass


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("create table if not exists marker (released boolean)")
    print("holding", flush=True)
    if sys.argv[2] == "release":
        sys.stdin.readline()
        con.execute("insert into marker values (true)")
        con.close()
    else:
        time.sleep(120)
    """
)


def start_holder(db_path: Path, mode: str) -> subprocess.Popen:
    with connect(db_path):
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db_path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_writer_waits_while_another_process_holds_the_file_then_succeeds(db_path: Path) -> None:
    holder = start_holder(db_path, "release")
    try:
        with pytest.raises(WarehouseLockedError):
            with connect(db_path, timeout_s=0):
                pass
        holder.stdin.write("go\n")
        holder.stdin.flush()
        with connect(db_path, timeout_s=60) as con:
            released = con.execute("select released from marker").fetchall()
        assert released == [(True,)]
    finally:
        holder.kill()
        holder.wait()


def test_writer_fails_after_the_timeout_naming_the_holder(db_path: Path) -> None:
    holder = start_holder(db_path, "hold")
    try:
        with pytest.raises(WarehouseLockedError) as error:
            with connect(db_path, timeout_s=0.5):
                pass
        message = str(error.value)
        assert f"PID {holder.pid}" in message
        assert "waited 0 s" in message or "waited 1 s" in message
        assert "lock_timeout_s" in message
    finally:
        holder.kill()
        holder.wait()


def test_views_trace_a_round_back_to_its_battles(db_path: Path) -> None:
    with connect(db_path) as con:
        write_literal_round(con)
        summary = con.execute("select * from v_round_summary").df().to_dict("records")[0]
        sft = con.execute(
            "select messages, battle_id from v_sft_data where origin = 'battle'"
        ).fetchall()
        lineage = con.execute(
            "select lineage, generation from v_model_lineage where version_id = 'r1-sft'"
        ).fetchone()
    # one battle's rows, and the rows mined from the logs' feedback beside them
    assert summary["n_battles"] == 1 and summary["n_sft"] == 2 and summary["n_dpo"] == 3
    assert summary["promoted"] and summary["sandbox_accuracy"] == 0.5
    assert summary["win_rate_ci_low"] == 0.8
    assert sft == [
        (
            [
                {"role": "user", "content": "What is 2 + 3?"},
                {"role": "assistant", "content": "Answer: 5"},
            ],
            "b1",
        )
    ]
    assert lineage == ("v0 <- r1-sft", 1)


def test_feedback_rows_export_in_trl_format_with_their_origin(db_path: Path) -> None:
    with connect(db_path) as con:
        write_literal_round(con)
        assert contract_violations(con) == []
        sft = con.execute(
            "select messages, origin from v_sft_data where example_id = 's-fb'"
        ).fetchone()
        pair = con.execute(
            "select prompt, chosen, rejected from v_dpo_pairs where pair_id = 'd-fb'"
        ).fetchone()
        fixed = con.execute(
            "select prompt, chosen, rejected, chosen_source from v_dpo_pairs "
            "where pair_id = 'd-fix'"
        ).fetchone()
    assert sft == (
        [
            {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "Answer: 5"},
        ],
        "feedback",
    )
    assert pair == (
        [{"role": "user", "content": "What is 2 + 3?"}],
        [{"role": "assistant", "content": "Answer: 5"}],
        [{"role": "assistant", "content": "Answer: 6"}],
    )
    assert fixed == (  # the user's correction chosen over the answer it corrects
        [{"role": "user", "content": "What is 2 + 3?"}],
        [{"role": "assistant", "content": "2 + 3 = 5."}],
        [{"role": "assistant", "content": "Answer: 6"}],
        "correction",
    )
