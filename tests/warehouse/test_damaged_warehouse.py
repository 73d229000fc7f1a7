"""A damaged warehouse file is named in one line with exit 2 by every command, never answered
from nor crashed on: a file cut short, a block zeroed, a file that is not DuckDB at all."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
import yaml

from flywheel.flows.cli import main
from flywheel.warehouse import integrity
from flywheel.warehouse.integrity import FILE_HEADER_BYTES, check_whole, checked_stamp
from flywheel.warehouse.store import connect
from tests.conftest import REPO_ROOT
from tests.warehouse.literal_rows import fill_warehouse

N_GENERATED_PROMPTS = 20_000  # enough rows for the prompts table to fill blocks of its own


def write_config(tmp_path: Path, warehouse: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"] |= {"path": str(warehouse), "lock_timeout_s": 5}
    data["student"]["path"] = str(tmp_path / "student")
    data["training"]["output_dir"] = str(tmp_path / "models")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def prompts_block(path: Path) -> tuple[int, int]:
    """(a data block of the prompts table, the block size in bytes)."""
    with duckdb.connect(str(path), read_only=True) as con:
        block = con.execute(
            "select max(block_id) from pragma_storage_info('prompts') where persistent"
        ).fetchone()[0]
        return block, integrity.block_bytes(con)


def truncate_to_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def zero_a_block(path: Path) -> None:
    block, n_bytes = prompts_block(path)
    with open(path, "r+b") as file:
        file.seek(FILE_HEADER_BYTES + block * n_bytes)
        file.write(bytes(n_bytes))


def overwrite_with_text(path: Path) -> None:
    path.write_text("these are not the rows you are looking for\n" * 1000)


DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncated": truncate_to_half,
    "zeroed block": zero_a_block,
    "not DuckDB": overwrite_with_text,
}
COMMANDS = {
    "sql": ["sql", "select count(*) from prompts"],
    "run": ["run"],
    "export": ["export", "--kind", "sft", "--out", "{tmp}/sft.jsonl"],
    "prompts add": ["prompts", "add", "{tmp}/new.jsonl"],
}


@pytest.fixture(scope="module")
def clean_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "flywheel.duckdb"
    fill_warehouse(path, N_GENERATED_PROMPTS)
    return path


def damaged_copy(clean: Path, tmp_path: Path, damage: str) -> Path:
    """The clean warehouse copied to a new file (never opened by this process), then damaged."""
    path = tmp_path / "flywheel.duckdb"
    shutil.copyfile(clean, path)
    DAMAGES[damage](path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_file_is_named_in_one_line_with_exit_2_and_left_untouched(
    clean_warehouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    command: str,
) -> None:
    warehouse = damaged_copy(clean_warehouse, tmp_path, damage)
    config = write_config(tmp_path, warehouse)
    (tmp_path / "new.jsonl").write_text('{"prompt": "What is 40 + 2?"}\n')
    before = sha256(warehouse)
    argv = [arg.format(tmp=tmp_path) for arg in COMMANDS[command]]
    assert main([*argv, "--config", str(config)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("flywheel: ") and str(warehouse) in lines[0]
    assert "flywheel warehouse restore DIR" in lines[0] and "Fix:" in lines[0]
    assert captured.out == ""  # no answer given
    assert sha256(warehouse) == before
    assert not Path(f"{warehouse}.wal").exists()


@pytest.mark.parametrize(
    ("damage", "said"),
    [("truncated", "it was cut short"), ("zeroed block", "fail their checksum")],
)
def test_the_message_says_which_damage(
    clean_warehouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    said: str,
) -> None:
    config = write_config(tmp_path, damaged_copy(clean_warehouse, tmp_path, damage))
    assert main(["sql", "select 1", "--config", str(config)]) == 2
    assert said in capsys.readouterr().err


def test_truncated_warehouse_is_refused_by_the_installed_command(
    clean_warehouse: Path, tmp_path: Path
) -> None:
    """The issue's case, in a process of its own: no count answered, no traceback."""
    config = write_config(tmp_path, damaged_copy(clean_warehouse, tmp_path, "truncated"))
    flywheel = Path(sys.executable).parent / "flywheel"
    query = "select count(*) from prompts"
    result = subprocess.run(
        [str(flywheel), "sql", query, "--config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "is damaged" in result.stderr


def test_warehouse_check_reads_every_table_of_a_whole_file(
    clean_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "flywheel.duckdb"
    shutil.copyfile(clean_warehouse, warehouse)
    assert main(["warehouse", "check", "--config", str(write_config(tmp_path, warehouse))]) == 0
    out = capsys.readouterr().out
    assert "reads whole" in out and "blocks' checksums verified" in out
    with duckdb.connect(str(warehouse), read_only=True) as con:
        total = sum(
            con.execute(f"select count(*) from {t}").fetchone()[0]
            for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()
        )
    assert f"{total} rows read through" in out


def test_warehouse_check_names_a_zeroed_block(
    clean_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = damaged_copy(clean_warehouse, tmp_path, "zeroed block")
    assert main(["warehouse", "check", "--config", str(write_config(tmp_path, warehouse))]) == 2
    assert "fail their checksum" in capsys.readouterr().err


def test_damage_met_while_reading_after_the_open_is_one_line_with_exit_2(
    clean_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file damaged after this process checked it: DuckDB's read error, mapped by main."""
    warehouse = tmp_path / "flywheel.duckdb"
    shutil.copyfile(clean_warehouse, warehouse)
    config = write_config(tmp_path, warehouse)
    assert main(["sql", "select 1", "--config", str(config)]) == 0  # checked whole, once
    truncate_to_half(warehouse)
    out = tmp_path / "sft.jsonl"
    assert main(["export", "--kind", "sft", "--out", str(out), "--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "is damaged" in error and "Traceback" not in error


def test_a_block_zeroed_after_the_open_is_named_by_sql_not_blamed_on_the_query(
    clean_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "flywheel.duckdb"
    shutil.copyfile(clean_warehouse, warehouse)
    config = write_config(tmp_path, warehouse)
    assert main(["sql", "select 1", "--config", str(config)]) == 0  # checked whole, once
    zero_a_block(warehouse)
    query = "select bit_xor(hash(columns(*))) from prompts"  # reads every value
    assert main(["sql", query, "--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "is damaged" in error and "checksum" in error
    assert "correct the query" not in error


def test_a_stamp_spares_rereading_an_unchanged_file_and_a_write_voids_it(
    clean_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "flywheel.duckdb"
    shutil.copyfile(clean_warehouse, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        check_whole(con, warehouse)
    assert checked_stamp(warehouse).is_file()

    def must_not_read(*_: object) -> str:
        raise AssertionError("an unchanged, stamped file was read again")

    with monkeypatch.context() as patched, duckdb.connect(str(warehouse), read_only=True) as con:
        patched.setattr(integrity, "find_damage", must_not_read)
        check_whole(con, warehouse)
    zero_a_block(warehouse)
    with (
        duckdb.connect(str(warehouse), read_only=True) as con,
        pytest.raises(integrity.WarehouseDamagedError, match="fail their checksum"),
    ):
        check_whole(con, warehouse)


def test_a_zeroed_free_block_is_not_damage(tmp_path: Path) -> None:
    """Blocks freed by a dropped table are never read again: only blocks in use are checked."""
    warehouse = tmp_path / "flywheel.duckdb"
    fill_warehouse(warehouse, N_GENERATED_PROMPTS)
    with connect(warehouse) as con:
        con.execute(
            "create table scratch as select i, md5(i::varchar) as s from range(200000) t(i)"
        )
        con.execute("checkpoint")
        con.execute("create table later as select i from range(200000) t(i)")  # after it
        con.execute("checkpoint")
        con.execute("drop table scratch")
        con.execute("checkpoint")
        used = integrity.used_blocks(con)
        n_bytes = integrity.block_bytes(con)
    n_present = (warehouse.stat().st_size - FILE_HEADER_BYTES) // n_bytes
    free = [block for block in range(n_present) if block not in used]
    assert free, "the dropped table left no free block to zero"
    with open(warehouse, "r+b") as file:
        file.seek(FILE_HEADER_BYTES + free[0] * n_bytes)
        file.write(bytes(n_bytes))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert integrity.find_damage(con, warehouse) is None
        assert con.execute("select count(*) from prompts").fetchone()[0] == N_GENERATED_PROMPTS + 2


def test_a_zeroed_block_of_long_strings_is_found(tmp_path: Path) -> None:
    """Strings longer than a few KiB overflow into blocks of their own: they are checked too."""
    warehouse = tmp_path / "flywheel.duckdb"
    with connect(warehouse) as con:
        con.execute(
            "insert into prompts (prompt_id, messages, prompt_text, source, split, status, "
            "n_chars, added_at) select 'long' || i, '[]', (select string_agg(md5((i * 1000 + j)"
            "::varchar), '') from range(200) r(j)), 'generated', 'pool', 'active', 6400, "
            "timestamp '2026-11-01 02:00' from range(300) t(i)"
        )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        overflow = con.execute(
            "select max(b) from (select unnest(additional_block_ids) as b "
            "from pragma_storage_info('prompts') where persistent)"
        ).fetchone()[0]
        n_bytes = integrity.block_bytes(con)
    assert overflow is not None, "no string overflowed into a block of its own"
    with open(warehouse, "r+b") as file:
        file.seek(FILE_HEADER_BYTES + overflow * n_bytes)
        file.write(bytes(n_bytes))
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert "fail their checksum" in (integrity.find_damage(con, warehouse) or "")


def test_warehouse_check_on_a_ducklake_names_a_data_file_cut_short(
    clean_warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_config(tmp_path / "file", tmp_path / "file" / "flywheel.duckdb")
    shutil.copyfile(clean_warehouse, tmp_path / "file" / "flywheel.duckdb")
    lake = yaml.safe_load(source.read_text())
    lake["warehouse"] = {
        "backend": "ducklake",
        "catalog": f"sqlite:{tmp_path / 'lake.sqlite'}",
        "data_path": str(tmp_path / "data"),
    }
    lake_config = tmp_path / "lake.yaml"
    lake_config.write_text(yaml.safe_dump(lake))
    assert main(["warehouse", "copy", "--config", str(source), "--to", str(lake_config)]) == 0
    assert main(["warehouse", "check", "--config", str(lake_config)]) == 0
    assert "reads whole" in capsys.readouterr().out
    data_file = max((tmp_path / "data").rglob("*.parquet"), key=lambda p: p.stat().st_size)
    truncate_to_half(data_file)
    assert main(["warehouse", "check", "--config", str(lake_config)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(data_file) in error and "is damaged" in error
