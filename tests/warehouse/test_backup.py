"""Backups of the warehouse file: written verified, brought back after damage with the same
answers, refused where they would overwrite or copy damage, rotated before each round."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from flywheel.config import ConfigError, parse_config
from flywheel.flows.cli import main
from flywheel.flows.run_lock import hold_run_lock
from flywheel.warehouse.backup import (
    BACKUP_FILE,
    MANIFEST_FILE,
    backup_before_round,
    default_backup_dir,
    round_backups,
)
from tests.conftest import REPO_ROOT, load_config_in
from tests.warehouse.literal_rows import fill_warehouse

QUERIES = [
    "select count(*) as n from prompts",
    "select round_id, status, champion_after from rounds order by round_id",
    "select prompt_id, prompt_text from prompts order by prompt_id limit 5",
    "select bit_xor(hash(prompt_text)) as h from prompts",
]


def config_data(tmp_path: Path, **warehouse: object) -> dict:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"] |= {"path": str(tmp_path / "flywheel.duckdb"), "lock_timeout_s": 5}
    data["warehouse"] |= warehouse
    data["student"]["path"] = str(tmp_path / "student")
    data["training"]["output_dir"] = str(tmp_path / "models")
    return data


def write_config(tmp_path: Path, **warehouse: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path, **warehouse)))
    return path


def answers(config: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What `flywheel sql --format csv` prints for each query."""
    printed = []
    for query in QUERIES:
        assert main(["sql", query, "--format", "csv", "--config", str(config)]) == 0
        printed.append(capsys.readouterr().out)
    return printed


def replace_with_truncated_copy(warehouse: Path) -> bytes:
    """Damage as a copy cut in half put in the file's place (a new file: this process has
    not checked it yet); return the damaged bytes."""
    damaged = warehouse.with_name("damaged.tmp")
    shutil.copyfile(warehouse, damaged)
    os.truncate(damaged, damaged.stat().st_size // 2)
    os.replace(damaged, warehouse)
    return warehouse.read_bytes()


def test_a_backup_restored_after_damage_gives_the_same_sql_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=5_000)
    before = answers(config, capsys)
    backup = tmp_path / "backup-1"
    assert main(["warehouse", "backup", str(backup), "--config", str(config)]) == 0
    assert "row counts verified" in capsys.readouterr().out
    assert (backup / BACKUP_FILE).is_file() and (backup / MANIFEST_FILE).is_file()

    damaged_bytes = replace_with_truncated_copy(warehouse)
    assert main(["sql", QUERIES[0], "--config", str(config)]) == 2
    capsys.readouterr()
    assert main(["warehouse", "restore", str(backup), "--config", str(config)]) == 0
    restored = capsys.readouterr().out
    kept = list(tmp_path.glob("flywheel.replaced-*.duckdb"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged_bytes  # kept aside, not deleted
    assert str(kept[0]) in restored
    assert answers(config, capsys) == before


def test_the_manifest_holds_every_tables_row_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill_warehouse(tmp_path / "flywheel.duckdb", n_prompts=10)
    assert main(["warehouse", "backup", str(tmp_path / "b"), "--config", str(config)]) == 0
    rows = json.loads((tmp_path / "b" / MANIFEST_FILE).read_text())["rows"]
    assert rows["prompts"] == 12 and rows["rounds"] == 1 and "schema_version" in rows
    assert (
        main(["sql", "select count(*) from battles", "--format", "csv", "--config", str(config)])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-1] == str(rows["battles"])


def test_backup_into_a_folder_that_holds_files_is_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill_warehouse(tmp_path / "flywheel.duckdb", n_prompts=10)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    assert main(["warehouse", "backup", str(taken), "--config", str(config)]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]


def test_a_damaged_warehouse_is_not_backed_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=5_000)
    replace_with_truncated_copy(warehouse)
    backup = tmp_path / "backup"
    assert main(["warehouse", "backup", str(backup), "--config", str(config)]) == 2
    assert "is damaged" in capsys.readouterr().err
    assert not backup.exists() and not Path(f"{backup}.partial").exists()


def test_restore_refuses_a_folder_that_is_not_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["warehouse", "restore", str(tmp_path / "empty"), "--config", str(config)]) == 2
    assert "is not a flywheel backup" in capsys.readouterr().err


def test_restore_refuses_a_backup_damaged_since_and_leaves_the_warehouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=5_000)
    backup = tmp_path / "backup"
    assert main(["warehouse", "backup", str(backup), "--config", str(config)]) == 0
    copy = backup / BACKUP_FILE
    os.truncate(copy, copy.stat().st_size // 2)
    before = warehouse.read_bytes()
    assert main(["warehouse", "restore", str(backup), "--config", str(config)]) == 2
    assert "does not read back whole" in capsys.readouterr().err
    assert warehouse.read_bytes() == before
    assert not list(tmp_path.glob("flywheel.replaced-*"))


def test_restore_is_refused_while_a_run_holds_the_warehouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path)
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=10)
    backup = tmp_path / "backup"
    assert main(["warehouse", "backup", str(backup), "--config", str(config_path)]) == 0
    before = warehouse.read_bytes()
    with hold_run_lock(load_config_in(tmp_path).warehouse):
        assert main(["warehouse", "restore", str(backup), "--config", str(config_path)]) == 1
    assert "another flywheel run is working on" in capsys.readouterr().err
    assert warehouse.read_bytes() == before


def test_backup_before_round_keeps_the_newest_n_and_nothing_else_is_touched(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=10)
    folder = default_backup_dir(str(warehouse))
    folder.mkdir()
    (folder / "my-own-copy").mkdir()
    for round_id in range(1, 5):
        report = backup_before_round(str(warehouse), 2, round_id)
        assert report is not None and report.rows["prompts"] == 12
    kept = round_backups(str(warehouse), folder)
    assert [json.loads((p / MANIFEST_FILE).read_text())["round_id"] for p in kept] == [3, 4]
    assert all(p.name.startswith("flywheel-") and "-before-round-" in p.name for p in kept)
    assert (folder / "my-own-copy").is_dir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [p.name for p in kept] + ["my-own-copy"]
    )


def test_backup_before_round_with_0_writes_nothing(tmp_path: Path) -> None:
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=10)
    assert backup_before_round(str(warehouse), 0, 1) is None
    assert not default_backup_dir(str(warehouse)).exists()


def test_backup_before_round_goes_to_the_configured_folder(tmp_path: Path) -> None:
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, n_prompts=10)
    report = backup_before_round(str(warehouse), 1, 7, str(tmp_path / "elsewhere"))
    assert report is not None and Path(report.directory).parent == tmp_path / "elsewhere"
    assert Path(report.directory).name.endswith("-before-round-7")


def lake_data(tmp_path: Path, **warehouse: object) -> dict:
    lake = {
        "backend": "ducklake",
        "catalog": f"sqlite:{tmp_path / 'lake.sqlite'}",
        "data_path": str(tmp_path / "lake-data"),
    }
    return config_data(tmp_path, **lake, **warehouse)


def test_backup_before_round_on_a_ducklake_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="warehouse.backup_before_round = 3") as refused:
        parse_config(lake_data(tmp_path, backup_before_round=3), "lake.yaml")
    assert "file backend" in str(refused.value)


@pytest.mark.parametrize("action", ["backup", "restore"])
def test_backup_and_restore_of_a_ducklake_say_they_are_for_the_file_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    config = tmp_path / "lake.yaml"
    config.write_text(yaml.safe_dump(lake_data(tmp_path)))
    assert main(["warehouse", action, str(tmp_path / "b"), "--config", str(config)]) == 2
    assert "is for the file backend" in capsys.readouterr().err
    assert not (tmp_path / "lake.sqlite").exists()


def test_restoring_twice_keeps_both_replaced_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    fill_warehouse(tmp_path / "flywheel.duckdb", n_prompts=10)
    backup = tmp_path / "backup"
    assert main(["warehouse", "backup", str(backup), "--config", str(config)]) == 0
    for _ in range(2):
        assert main(["warehouse", "restore", str(backup), "--config", str(config)]) == 0
    assert len(list(tmp_path.glob("flywheel.replaced-*.duckdb"))) == 2
