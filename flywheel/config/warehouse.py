"""`warehouse`: where every round's data lives (one DuckDB file, or a DuckLake catalog plus
data files shared by several writers)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import SANDBOX_URL, catalog_problem, field_problem, url_problem


class WarehouseConfig(Section):
    backend: Literal["duckdb", "ducklake"] = _help(
        "duckdb: one DuckDB file (`path`), one machine; ducklake: a DuckLake `catalog` plus "
        "`data_path`, shared by several writers and analysts at once",
        default="duckdb",
    )
    path: str = _help(
        "DuckDB file holding every round's data; created on first use (backend duckdb)",
        default="warehouse/flywheel.duckdb",
        min_length=1,
    )
    lock_timeout_s: float = _help(
        "seconds to wait for another process to release the file (backend duckdb), or to retry "
        "a DuckLake commit that conflicted with another writer, before failing; 0 fails at once",
        default=120.0,
        ge=0,
    )
    backup_before_round: int = _help(
        "backend duckdb: before each round, copy the warehouse file into `backup_dir` "
        "(verified) and keep the newest N such backups; 0: no automatic backups",
        default=0,
        ge=0,
    )
    backup_dir: str | None = _help(
        "folder of the automatic backups; null: `backups/` beside the warehouse file",
        default=None,
    )
    catalog: str | None = _help(
        "backend ducklake: the catalog, `sqlite:<file>` (one machine) or `postgres:<libpq "
        "string>` such as `postgres:host=db dbname=lake user=flywheel` (password from PGPASSWORD)",
        default=None,
    )
    data_path: str | None = _help(
        "backend ducklake: where the data files go, a local folder or `s3://bucket/prefix`",
        default=None,
    )
    s3_endpoint_url: str | None = _help(
        "S3-compatible server for an s3:// data_path (http://host:port for MinIO, moto, ...); "
        "null: AWS",
        default=None,
    )
    s3_region: str = _help("region of the s3:// data_path's bucket", default="us-east-1")
    s3_key_id_env: str = _help(
        "environment variable holding the S3 access key id (the key itself never goes here)",
        default="AWS_ACCESS_KEY_ID",
    )
    s3_secret_env: str = _help(
        "environment variable holding the S3 secret access key", default="AWS_SECRET_ACCESS_KEY"
    )

    @field_validator("catalog")
    @classmethod
    def _check_catalog(cls, catalog: str | None) -> str | None:
        problem = catalog_problem(catalog)
        if problem is not None:
            raise field_problem(
                problem,
                "write `sqlite:<file>` (e.g. sqlite:warehouse/lake.sqlite) or `postgres:<libpq "
                "connection string>` (e.g. postgres:host=127.0.0.1 dbname=lake user=flywheel); a "
                "Postgres password comes from the environment (PGPASSWORD), never from here",
            )
        return catalog

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, endpoint: str | None) -> str | None:
        problem = None if endpoint is None else url_problem(endpoint)
        if problem is not None or endpoint == SANDBOX_URL:
            problem = "not an http:// or https:// URL with a host"
            raise field_problem(problem, "write http://host:port or https://host of the S3 server")
        return endpoint

    @model_validator(mode="after")
    def _check_backend(self) -> WarehouseConfig:
        if self.backend != "ducklake":
            return self
        for name in ("catalog", "data_path"):
            if not getattr(self, name):
                raise field_problem(
                    "required with backend ducklake",
                    "set warehouse.catalog (sqlite:<file> or postgres:<libpq string>) and "
                    "warehouse.data_path (a folder or s3://bucket/prefix), or set "
                    "warehouse.backend: duckdb",
                    field=name,
                    value=None,
                )
        if self.backup_before_round:
            raise field_problem(
                "backups are for the file backend (warehouse.backend: duckdb)",
                "set warehouse.backup_before_round: 0 and back a DuckLake up with its catalog's "
                "and storage's own tools, or copy it into a DuckDB file with `flywheel warehouse "
                "copy --to <config of a file warehouse>`",
                field="backup_before_round",
                value=self.backup_before_round,
            )
        return self

    @property
    def local_file(self) -> Path | None:
        """The one file that identifies this warehouse on this machine: the DuckDB file, or
        a DuckLake's SQLite catalog; None for a Postgres catalog (shared by many machines)."""
        if self.backend == "duckdb":
            return Path(self.path)
        kind, _, rest = (self.catalog or "").partition(":")
        return Path(rest).expanduser() if kind == "sqlite" else None

    @property
    def location(self) -> str:
        """What the warehouse is, for messages and for telling two configs' warehouses apart:
        the file's path, or `ducklake:<catalog>`."""
        if self.backend == "ducklake":
            return f"ducklake:{self.catalog}"
        return self.path
