"""`flywheel warehouse ...`: copy, check, backup and restore the warehouse itself."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.config import Config, WarehouseConfig, load_config
from flywheel.errors import InputError

if TYPE_CHECKING:  # imported where used: the CLI's start stays cheap
    from flywheel.warehouse.backup import BackupReport
    from flywheel.warehouse.integrity import CheckReport


def add_warehouse_commands(
    commands: argparse._SubParsersAction,
    add_config_argument: Callable[[argparse.ArgumentParser], None],
) -> None:
    """`warehouse copy|check|backup|restore`."""
    warehouse = commands.add_parser("warehouse", help="manage the warehouse itself")
    actions = warehouse.add_subparsers(dest="warehouse_command", required=True, metavar="ACTION")
    copy = actions.add_parser(
        "copy", help="copy this warehouse into the empty warehouse of another config, verified"
    )
    add_config_argument(copy)
    copy.add_argument("--to", required=True, help="config file of the target warehouse")
    check = actions.add_parser(
        "check", help="read the whole warehouse: every block's checksum, every table through"
    )
    add_config_argument(check)
    backup = actions.add_parser(
        "backup", help="copy the warehouse file into a new folder DIR, verified (file backend)"
    )
    add_config_argument(backup)
    backup.add_argument("directory", metavar="DIR", help="a new (or empty) folder")
    restore = actions.add_parser(
        "restore", help="bring back the backup in DIR; the file it replaces is kept aside"
    )
    add_config_argument(restore)
    restore.add_argument("directory", metavar="DIR", help="a folder written by `backup`")


def command_warehouse(config: Config, args: argparse.Namespace) -> int:
    action = args.warehouse_command
    if action == "copy":
        from flywheel.warehouse.copy import copy_warehouse

        print(copy_warehouse(config.warehouse, load_config(args.to).warehouse).summary())
    elif action == "check":
        print(check_configured_warehouse(config.warehouse).summary())
    else:
        print(backup_or_restore(config.warehouse, action, args.directory).summary())
    return 0


def check_configured_warehouse(warehouse: WarehouseConfig) -> CheckReport:
    """Every block in use of the file checked, then every table read through."""
    from flywheel.warehouse.integrity import check_warehouse
    from flywheel.warehouse.store import connect_warehouse

    is_file = warehouse.backend == "duckdb"
    if is_file and not Path(warehouse.path).is_file():
        raise InputError(
            f"there is no warehouse file at {warehouse.path} to check. Fix: check "
            "warehouse.path in the config (--config)."
        )
    with connect_warehouse(warehouse, read_only=True) as con:
        return check_warehouse(con, warehouse.location, warehouse.path if is_file else None)


def backup_or_restore(warehouse: WarehouseConfig, action: str, directory: str) -> BackupReport:
    """`backup` or `restore` of the file backend, under the run lock."""
    from flywheel.flows.run_lock import hold_run_lock
    from flywheel.warehouse.backup import restore_backup, write_backup

    if warehouse.backend != "duckdb":
        raise InputError(
            f"`flywheel warehouse {action}` is for the file backend (warehouse.backend: duckdb); "
            f"this warehouse is {warehouse.location}. Fix: copy the lake into a DuckDB file "
            "with `flywheel warehouse copy --to <config of a file warehouse>`, or use the "
            "catalog's and storage's own backups."
        )
    with hold_run_lock(warehouse):  # no run writes meanwhile; a running one refuses this
        if action == "backup":
            return write_backup(warehouse.path, directory, timeout_s=warehouse.lock_timeout_s)
        return restore_backup(warehouse.path, directory)
