"""The DuckLake backend on a real Postgres catalog and a real S3-compatible server (moto), both
started here: the same rows as the DuckDB file, data files in the bucket, concurrent writers
that never duplicate a key, and wrong credentials refused before anything is written."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from flywheel.config import load_config
from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.lake import close_lakes
from flywheel.warehouse.store import connect_warehouse
from flywheel.warehouse.writes import insert_new
from tests.warehouse.lake_processes import ANALYST_QUERY, rating_row
from tests.warehouse.literal_rows import write_literal_round
from tests.warehouse.servers import (
    PG_PASSWORD,
    S3_KEY_ID,
    S3_SECRET,
    PostgresServer,
    S3Server,
    postgres_server,
    s3_server,
)
from tests.warehouse.test_lake import (
    finish,
    refusal,
    start,
    table_contents,
    write_config,
)

_names = (f"lake{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, S3Server]]:
    with (
        pytest.MonkeyPatch.context() as env,
        postgres_server() as postgres,
        s3_server() as s3,
    ):
        env.setenv("PGPASSWORD", PG_PASSWORD)
        env.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
        env.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        yield postgres, s3
    close_lakes()


def server_lake(servers: tuple[PostgresServer, S3Server], tmp_path: Path, **changes: str) -> Path:
    """A config whose lake is a new Postgres database plus a new prefix in the bucket."""
    postgres, s3 = servers
    name = next(_names)
    settings = {
        "backend": "ducklake",
        "catalog": postgres.create_database(name),
        "data_path": f"s3://{s3.bucket}/{name}",
        "s3_endpoint_url": s3.endpoint_url,
    }
    return write_config(tmp_path, name, settings | changes)


def test_postgres_catalog_and_s3_data_hold_the_file_warehouse_rows(
    servers: tuple[PostgresServer, S3Server], tmp_path: Path
) -> None:
    lake = load_config(server_lake(servers, tmp_path))
    file = load_config(write_config(tmp_path, "file", {"path": str(tmp_path / "f.duckdb")}))
    many = [rating_row(key) | {"round_id": 9} for key in range(500)]  # beyond inlining
    for config in (lake, file):
        with connect_warehouse(config.warehouse) as con:
            write_literal_round(con)
            assert insert_new(con, "ratings", many) == 500
            assert write_literal_round(con) == dict.fromkeys(NATURAL_KEYS, 0)
            assert contract_violations(con) == []
    lake_tables, file_tables = table_contents(lake), table_contents(file)
    for table in NATURAL_KEYS:
        pd.testing.assert_frame_equal(lake_tables[table], file_tables[table], check_dtype=False)
    prefix = lake.warehouse.data_path.removeprefix(f"s3://{servers[1].bucket}/")
    assert any(
        key.startswith(prefix) and key.endswith(".parquet") for key in servers[1].object_keys()
    )


@pytest.mark.slow
def test_concurrent_writers_on_postgres_store_each_key_once(
    servers: tuple[PostgresServer, S3Server], tmp_path: Path
) -> None:
    """On Postgres nothing serialises two writers but the write guard: without it, both
    would insert the keys they share (150-299)."""
    config_path = server_lake(servers, tmp_path)
    with connect_warehouse(load_config(config_path).warehouse):
        pass
    stop_file = tmp_path / "stop-reading"
    reader = start(config_path, "read", str(stop_file))
    writers = [start(config_path, "rows", "0", "300"), start(config_path, "rows", "150", "450")]
    for writer in writers:
        finish(writer)
    stop_file.touch()
    assert int(finish(reader).split()[-1]) >= 1
    with connect_warehouse(load_config(config_path).warehouse, read_only=True) as con:
        assert con.execute(ANALYST_QUERY).fetchall() == [(1, 450, 450)]
        assert contract_violations(con) == []


def test_wrong_postgres_password_is_refused(
    servers: tuple[PostgresServer, S3Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(server_lake(servers, tmp_path))
    monkeypatch.setenv("PGPASSWORD", "wrong")
    message = refusal(config)
    assert "warehouse.catalog" in message and "PGPASSWORD" in message


def test_a_bucket_that_cannot_be_written_is_refused(
    servers: tuple[PostgresServer, S3Server], tmp_path: Path
) -> None:
    config = load_config(server_lake(servers, tmp_path, data_path="s3://no-such-bucket/lake"))
    message = refusal(config)
    assert "warehouse.data_path = 's3://no-such-bucket/lake' cannot be written" in message
