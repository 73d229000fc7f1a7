"""The DuckLake settings and how they become an attached catalog: the extensions (loaded from the
`duckdb-extension-*` packages' files; autoinstall is off, so nothing is ever downloaded), the
ATTACH target of a SQLite or Postgres catalog, the S3 secret of an s3:// data path, and the
one-line refusal naming the setting to fix."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Protocol

import duckdb

from flywheel.errors import InputError

EXTENSION_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}


class LakeSettings(Protocol):
    """What the DuckLake backend needs of the config's warehouse section."""

    backend: str
    catalog: str | None
    data_path: str | None
    lock_timeout_s: float
    s3_endpoint_url: str | None
    s3_region: str
    s3_key_id_env: str
    s3_secret_env: str


class WarehouseCatalogError(InputError):
    """The DuckLake catalog or data path cannot be used as configured; the message names the
    setting and the fix."""


def is_lake(settings: object) -> bool:
    return getattr(settings, "backend", "duckdb") == "ducklake"


def extension_file(name: str) -> Path:
    """The `.duckdb_extension` file inside the installed `duckdb-extension-<name>` package."""
    package = EXTENSION_PACKAGES[name]
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise WarehouseCatalogError(
            f"warehouse.backend = 'ducklake' needs the package {package.replace('_', '-')}, "
            "which is not installed. Fix: pip install -e . (pyproject.toml pins it)."
        ) from e
    files = sorted(Path(module.__file__).parent.glob("extensions/*/*.duckdb_extension"))
    if not files:
        raise WarehouseCatalogError(f"the package {package} holds no .duckdb_extension file")
    return files[-1]


def catalog_kind(catalog: str) -> str:
    """`sqlite` or `postgres`."""
    return catalog.partition(":")[0]


def sqlite_catalog_file(catalog: str) -> Path | None:
    """The catalog's SQLite file, or None for a Postgres catalog."""
    if catalog_kind(catalog) != "sqlite":
        return None
    return Path(catalog.partition(":")[2]).expanduser()


def ducklake_target(catalog: str) -> str:
    """The ATTACH target: `ducklake:sqlite:<absolute file>` or `ducklake:postgres:<conninfo>`."""
    file = sqlite_catalog_file(catalog)
    if file is not None:
        return f"ducklake:sqlite:{file.resolve()}"
    return f"ducklake:postgres:{catalog.partition(':')[2].strip()}"


def is_s3(data_path: str) -> bool:
    return data_path.startswith("s3://")


def normalised_data_path(data_path: str) -> str:
    """A local folder made absolute (DuckLake stores the data path in the catalog, so every
    process must name it the same way), with one trailing slash."""
    if is_s3(data_path):
        return data_path.rstrip("/") + "/"
    return str(Path(data_path).expanduser().resolve()) + "/"


def sql_literal(value: str) -> str:
    """`value` as a quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def missing_s3_variables(settings: LakeSettings) -> list[str]:
    """Names of the S3 credential variables an s3:// data path needs that are not set."""
    if not settings.data_path or not is_s3(settings.data_path):
        return []
    names = (settings.s3_key_id_env, settings.s3_secret_env)
    return [name for name in names if not os.environ.get(name)]


def s3_secret_sql(settings: LakeSettings) -> str:
    """`create secret` for the S3 data path, credentials read from the environment now."""
    missing = missing_s3_variables(settings)
    if missing:
        raise WarehouseCatalogError(s3_variables_problem(settings, missing))
    options = {
        "type": "s3",
        "key_id": os.environ[settings.s3_key_id_env],
        "secret": os.environ[settings.s3_secret_env],
        "region": settings.s3_region,
    }
    if settings.s3_endpoint_url:
        scheme, _, host = settings.s3_endpoint_url.partition("://")
        options |= {"endpoint": host.rstrip("/"), "url_style": "path"}
        use_ssl = "true" if scheme == "https" else "false"
    else:
        use_ssl = "true"
    body = ", ".join(f"{k} {sql_literal(v)}" for k, v in options.items())
    return f"create or replace secret flywheel_s3 ({body}, use_ssl {use_ssl})"


def s3_variables_problem(settings: LakeSettings, missing: list[str]) -> str:
    return (
        f"warehouse.data_path = {settings.data_path!r} is on S3, but the environment variable"
        f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
        f"{'are' if len(missing) > 1 else 'is'} not set (warehouse.s3_key_id_env, "
        f"warehouse.s3_secret_env name them). Fix: export {missing[0]}=<your key>, or name "
        "other variables in those settings."
    )


def needed_extensions(settings: LakeSettings) -> list[str]:
    """The extensions this lake needs (each costs a few hundred ms to load)."""
    catalog = (
        "sqlite_scanner" if catalog_kind(settings.catalog or "") == "sqlite" else "postgres_scanner"
    )
    s3 = ["httpfs"] if settings.data_path and is_s3(settings.data_path) else []
    return ["ducklake", catalog, *s3]


def load_extensions(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """Load extensions from their packages' files (never downloaded)."""
    for name in names:
        con.execute(f"load {sql_literal(str(extension_file(name)))}")


def new_database(settings: LakeSettings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database with the extensions this lake needs loaded."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    load_extensions(con, needed_extensions(settings))
    return con


def attach_lake(
    con: duckdb.DuckDBPyConnection, settings: LakeSettings, alias: str, read_only: bool
) -> None:
    """Attach the configured lake to `con` as `alias`; WarehouseCatalogError names the setting."""
    assert settings.catalog and settings.data_path
    if is_s3(settings.data_path):
        con.execute(s3_secret_sql(settings))
    file = sqlite_catalog_file(settings.catalog)
    if file is not None and not read_only:
        file.resolve().parent.mkdir(parents=True, exist_ok=True)
    options = ["read_only"] if read_only else []
    options.append(f"data_path {sql_literal(normalised_data_path(settings.data_path))}")
    target = sql_literal(ducklake_target(settings.catalog))
    try:
        con.execute(f"attach {target} as {alias} ({', '.join(options)})")
    except duckdb.Error as e:
        raise WarehouseCatalogError(describe_attach_error(settings, e)) from e


def describe_attach_error(settings: LakeSettings, error: duckdb.Error) -> str:
    """One line naming the setting that is wrong and how to fix it."""
    first = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), str(error))
    message = str(error)
    if "does not match existing data path" in message:
        return (
            f"warehouse.data_path = {settings.data_path!r} is not the data path the catalog "
            f"{settings.catalog!r} was made with ({first}). Fix: set warehouse.data_path to the "
            "catalog's data path, or use a new catalog."
        )
    if "password" in message.lower() or "authentication" in message.lower():
        fix = "check the user in warehouse.catalog and the password in PGPASSWORD"
    elif catalog_kind(settings.catalog or "") == "postgres":
        fix = "check host, port and dbname in warehouse.catalog, and that the server runs"
    else:
        fix = "point warehouse.catalog at a SQLite file in a writable folder"
    return f"warehouse.catalog = {settings.catalog!r} cannot be opened ({first}). Fix: {fix}."
