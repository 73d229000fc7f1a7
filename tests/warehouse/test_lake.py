"""The DuckLake backend on a SQLite catalog (real catalog file, real data folder): the same
schema, views and idempotent writes as the DuckDB file, several processes at once, a killed
writer, the copy command, and bad settings refused before anything is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flywheel.config import Config, ConfigError, load_config
from flywheel.flows.cli import main as flywheel_main
from flywheel.preflight import check_before_run
from flywheel.warehouse.catalog import list_relations
from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.copy import WarehouseCopyError, copy_warehouse
from flywheel.warehouse.export import export_rows
from flywheel.warehouse.lake import close_lakes
from flywheel.warehouse.store import LATEST_SCHEMA_VERSION, connect_warehouse, schema_version
from flywheel.warehouse.writes import insert_new
from tests.conftest import REPO_ROOT
from tests.warehouse.lake_processes import ANALYST_QUERY
from tests.warehouse.literal_rows import LITERAL_ROWS, write_literal_round

VIEWS = ("v_round_summary", "v_sft_data", "v_preference_pairs", "v_dpo_pairs", "v_rm_pairs")


def write_config(folder: Path, name: str, warehouse: dict) -> Path:
    """configs/smoke.yaml with this warehouse section and every path under `folder`."""
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"] = {"lock_timeout_s": 60, **warehouse}
    data["student"]["path"] = str(folder / "student")
    data["training"]["output_dir"] = str(folder / "models")
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def lake_settings(folder: Path, name: str = "lake") -> dict:
    return {
        "backend": "ducklake",
        "catalog": f"sqlite:{folder / name}.sqlite",
        "data_path": str(folder / f"{name}-data"),
    }


@pytest.fixture
def lake_config_path(tmp_path: Path) -> Path:
    yield write_config(tmp_path, "lake", lake_settings(tmp_path))
    close_lakes()


@pytest.fixture
def file_config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path, "file", {"path": str(tmp_path / "file.duckdb")})


def table_contents(config: Config) -> dict[str, pd.DataFrame]:
    """Every table's rows, sorted by natural key (created_at is when the row was written)."""
    contents = {}
    with connect_warehouse(config.warehouse, read_only=True) as con:
        for table, key in NATURAL_KEYS.items():
            frame = con.execute(f"select * from {table} order by {', '.join(key)}").df()
            contents[table] = frame.drop(columns=["created_at"], errors="ignore")
    return contents


def start(config_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.warehouse.lake_processes", str(config_path), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout_s: float = 300) -> str:
    out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err[-3000:]
    return out


def test_lake_holds_the_file_warehouse_schema_views_and_rows(
    lake_config_path: Path, file_config_path: Path
) -> None:
    lake, file = load_config(lake_config_path), load_config(file_config_path)
    relations = {}
    for config in (lake, file):
        with connect_warehouse(config.warehouse) as con:
            assert schema_version(con) == LATEST_SCHEMA_VERSION
            write_literal_round(con)
            assert write_literal_round(con) == {t: 0 for t in LITERAL_ROWS}  # idempotent
            assert contract_violations(con) == []
            relations[config.warehouse.backend] = list_relations(con)
    assert relations["ducklake"].equals(relations["duckdb"])
    lake_tables, file_tables = table_contents(lake), table_contents(file)
    for table in NATURAL_KEYS:
        pd.testing.assert_frame_equal(lake_tables[table], file_tables[table], check_dtype=False)
    for view in VIEWS:
        frames = []
        for config in (lake, file):
            with connect_warehouse(config.warehouse, read_only=True) as con:
                frames.append(con.execute(f"select * from {view}").df().astype(str))
        pd.testing.assert_frame_equal(frames[0], frames[1])
    with connect_warehouse(lake.warehouse, read_only=True) as con:
        lake_export = export_rows(con, "v_dpo_pairs", ("prompt", "chosen", "rejected"))
    with connect_warehouse(file.warehouse, read_only=True) as con:
        assert (
            export_rows(con, "v_dpo_pairs", ("prompt", "chosen", "rejected")) == lake_export
            and lake_export
        )


def test_a_stored_error_row_is_replaced_on_the_lake(lake_config_path: Path) -> None:
    config = load_config(lake_config_path)
    failed = {"call_id": "c1", "endpoint": "e", "model": "m", "request_json": "{}", "error": "500"}
    retried = failed | {"error": None, "response_text": "ok"}
    with connect_warehouse(config.warehouse) as con:
        assert insert_new(con, "llm_calls", [failed]) == 1
        assert insert_new(con, "llm_calls", [retried]) == 1
        assert insert_new(con, "llm_calls", [failed]) == 0
        rows = con.execute("select response_text, error from llm_calls").fetchall()
    assert rows == [("ok", None)]


def test_sql_and_export_commands_read_the_lake(
    lake_config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with connect_warehouse(load_config(lake_config_path).warehouse) as con:
        write_literal_round(con)
    query = "select count(*) as n from battles"
    assert flywheel_main(["sql", "--config", str(lake_config_path), query, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", str(len(LITERAL_ROWS["battles"]))]
    out = tmp_path / "sft.jsonl"
    args = ["export", "--config", str(lake_config_path), "--kind", "sft", "--out", str(out)]
    assert flywheel_main(args) == 0
    assert len(out.read_text().splitlines()) == len(LITERAL_ROWS["sft_examples"])
    refused = ["sql", "--config", str(lake_config_path), "delete from battles"]
    assert flywheel_main(refused) == 2


@pytest.mark.slow
def test_concurrent_writers_store_each_key_once_and_a_reader_never_fails(
    lake_config_path: Path, tmp_path: Path
) -> None:
    """Two processes write overlapping keys of the same round at once (keys 0-299 and
    150-449) while an analyst's query loops; every key is stored once, no query failed."""
    with connect_warehouse(load_config(lake_config_path).warehouse):
        pass  # created and migrated, so that the three start on the same lake
    stop_file = tmp_path / "stop-reading"
    reader = start(lake_config_path, "read", str(stop_file))
    writers = [
        start(lake_config_path, "rows", "0", "300"),
        start(lake_config_path, "rows", "150", "450"),
    ]
    for writer in writers:
        finish(writer)
    stop_file.touch()
    n_queries = int(finish(reader).split()[-1])
    assert n_queries >= 1
    with connect_warehouse(load_config(lake_config_path).warehouse, read_only=True) as con:
        counts = con.execute(ANALYST_QUERY).fetchall()
        assert counts == [(1, 450, 450)]
        assert con.execute("select count(*) from llm_calls").fetchone()[0] == 450
        assert contract_violations(con) == []


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_a_consistent_catalog(lake_config_path: Path) -> None:
    """SIGKILL while batches (three tables, one transaction each) are being written: every
    committed batch is whole, no half batch is visible, and the lake takes new writes."""
    writer = start(lake_config_path, "batches")
    assert writer.stdout is not None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = writer.stdout.readline()
        if line.startswith("committed") and int(line.split()[1]) >= 5:
            break
        assert line, writer.stderr.read() if writer.stderr else "writer exited"
    time.sleep(0.05)  # land inside a later batch's transaction or commit
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=60)
    config = load_config(lake_config_path)
    with connect_warehouse(config.warehouse) as con:
        n_batches = {
            table: con.execute(f"select count(*) from {table}").fetchone()[0]
            for table in ("ratings", "llm_calls", "model_versions")
        }
        assert len(set(n_batches.values())) == 1 and n_batches["ratings"] >= 6
        assert contract_violations(con) == []
        extra = {"round_id": 2, "model_id": "after", "rating": 1.0, "n_battles": 1}
        assert insert_new(con, "ratings", [extra]) == 1


def test_copy_from_file_to_lake_and_back_keeps_every_row(
    file_config_path: Path, lake_config_path: Path, tmp_path: Path
) -> None:
    file, lake = load_config(file_config_path), load_config(lake_config_path)
    with connect_warehouse(file.warehouse) as con:
        write_literal_round(con)
    report = copy_warehouse(file.warehouse, lake.warehouse)
    assert report.rows["battles"] == len(LITERAL_ROWS["battles"])
    back = load_config(write_config(tmp_path, "back", {"path": str(tmp_path / "back.duckdb")}))
    copy_warehouse(lake.warehouse, back.warehouse)
    original, copied = table_contents(file), table_contents(back)
    for table in NATURAL_KEYS:
        pd.testing.assert_frame_equal(original[table], copied[table])
    before = table_contents(lake)
    with pytest.raises(WarehouseCopyError, match="non-empty target"):
        copy_warehouse(file.warehouse, lake.warehouse)
    after = table_contents(lake)
    assert all(before[t].equals(after[t]) for t in NATURAL_KEYS)


def test_copy_command_prints_what_it_verified(
    file_config_path: Path, lake_config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with connect_warehouse(load_config(file_config_path).warehouse) as con:
        write_literal_round(con)
    args = ["warehouse", "copy", "--config", str(file_config_path), "--to", str(lake_config_path)]
    assert flywheel_main(args) == 0
    assert "row counts and natural keys verified" in capsys.readouterr().out
    assert flywheel_main(args) == 2  # the target is no longer empty
    assert "non-empty target" in capsys.readouterr().err


def refusal(config: Config) -> str:
    with pytest.raises(ConfigError) as raised:
        check_before_run(config)
    return str(raised.value)


def test_bad_lake_settings_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    not_sqlite = tmp_path / "not-a-catalog.sqlite"
    not_sqlite.write_text("hello")
    cases = {
        "warehouse.catalog": {"catalog": f"sqlite:{blocker}/lake.sqlite"},
        "warehouse.data_path": {"data_path": str(blocker / "data")},
        "is not a SQLite file": {"catalog": f"sqlite:{not_sqlite}"},
        "port 1 failed": {"catalog": "postgres:host=127.0.0.1 port=1 dbname=lake user=x"},
    }
    for expected, change in cases.items():
        config = load_config(write_config(tmp_path, "bad", lake_settings(tmp_path) | change))
        assert expected in refusal(config)
    listed = sorted(p.name for p in tmp_path.iterdir())
    assert "lake.sqlite" not in listed and "bad.sqlite" not in listed  # no catalog was made


def test_s3_data_path_without_credentials_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_TEST_S3_KEY", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "set")
    settings = lake_settings(tmp_path) | {
        "data_path": "s3://bucket/lake",
        "s3_key_id_env": "FLYWHEEL_TEST_S3_KEY",
        "s3_endpoint_url": "http://127.0.0.1:1",
    }
    message = refusal(load_config(write_config(tmp_path, "s3", settings)))
    assert "FLYWHEEL_TEST_S3_KEY" in message and "is not set" in message
    assert not (tmp_path / "lake.sqlite").exists()


def test_a_catalog_of_a_newer_schema_is_refused_untouched(lake_config_path: Path) -> None:
    config = load_config(lake_config_path)
    with connect_warehouse(config.warehouse) as con:
        con.execute("insert into schema_version values (?, now())", [LATEST_SCHEMA_VERSION + 1])
    close_lakes()
    catalog = Path(config.warehouse.catalog.partition(":")[2])
    stamp = catalog.stat().st_mtime_ns
    assert f"schema version {LATEST_SCHEMA_VERSION + 1}" in refusal(config)
    assert catalog.stat().st_mtime_ns == stamp


def test_ducklake_settings_are_checked_with_the_config(tmp_path: Path) -> None:
    cases = {
        "warehouse.catalog": {"backend": "ducklake", "data_path": "x"},
        "warehouse.data_path": {"backend": "ducklake", "catalog": "sqlite:x.sqlite"},
        "neither `sqlite:<file>`": {"catalog": "mysql:x"},
        "holds a password": {"catalog": "postgres:host=h password=secret"},
        "not an http:// or https:// URL": {"s3_endpoint_url": "ftp://minio"},
    }
    for expected, warehouse in cases.items():
        with pytest.raises(ConfigError, match=expected.replace("`", ".")):
            load_config(write_config(tmp_path, "bad", warehouse))


def test_sql_on_an_unreachable_catalog_exits_2_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = {"catalog": "postgres:host=127.0.0.1 port=1 dbname=lake user=x"}
    config_path = write_config(tmp_path, "gone", lake_settings(tmp_path) | unreachable)
    assert flywheel_main(["sql", "--config", str(config_path), "select 1"]) == 2
    assert "warehouse.catalog = " in capsys.readouterr().err


def test_run_lock_is_the_sqlite_catalog_file_and_none_on_postgres(tmp_path: Path) -> None:
    from flywheel.flows.run_lock import RunLockedError, hold_run_lock, run_lock_path

    sqlite = load_config(write_config(tmp_path, "lake", lake_settings(tmp_path))).warehouse
    assert run_lock_path(sqlite) == tmp_path / "lake.sqlite.run"
    with hold_run_lock(sqlite) as alone:
        assert alone
        child = subprocess.run(
            [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a+'); "
             "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(run_lock_path(sqlite))],
            capture_output=True,
        )  # fmt: skip
        assert child.returncode != 0  # another process cannot take it
    with pytest.raises(RunLockedError), hold_run_lock(sqlite), hold_run_lock(sqlite):
        pass  # a second holder in the same process is refused too (flock per open file)
    postgres = {"catalog": "postgres:host=db dbname=lake user=flywheel"}
    shared = load_config(write_config(tmp_path, "pg", lake_settings(tmp_path) | postgres))
    with hold_run_lock(shared.warehouse) as alone:
        assert not alone and run_lock_path(shared.warehouse) is None
