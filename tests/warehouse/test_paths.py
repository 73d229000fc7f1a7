"""Warehouse paths: a bad `warehouse.path` is named with its fix; a read-only warehouse reads."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import flywheel.warehouse.store as store
from flywheel.errors import InputError
from flywheel.warehouse.store import WarehousePathError, connect


def test_a_folder_as_warehouse_path_is_refused_naming_the_field(tmp_path: Path) -> None:
    for read_only in (False, True):
        with pytest.raises(WarehousePathError) as refused:
            with connect(tmp_path, read_only=read_only):
                pass
        assert isinstance(refused.value, InputError)
        assert f"warehouse.path = {str(tmp_path)!r} is a folder. Fix:" in str(refused.value)
        assert str(tmp_path / "flywheel.duckdb") in str(refused.value)
    assert list(tmp_path.iterdir()) == [], "nothing may be written into the folder"


@pytest.mark.parametrize("below", ["flywheel.duckdb", "deeper/flywheel.duckdb"])
def test_a_path_under_a_regular_file_is_refused_naming_the_file(tmp_path: Path, below: str) -> None:
    regular_file = tmp_path / "notes.txt"
    regular_file.write_text("not a folder")
    for read_only in (False, True):
        with pytest.raises(WarehousePathError) as refused:
            with connect(regular_file / below, read_only=read_only):
                pass
        message = str(refused.value)
        assert f"lies under {str(regular_file)!r}, which is a file, not a folder" in message
        assert message.startswith("warehouse.path = ") and "Fix:" in message
    assert regular_file.read_text() == "not a folder"


def test_a_file_that_is_not_duckdb_is_refused_and_left_untouched(tmp_path: Path) -> None:
    not_duckdb = tmp_path / "flywheel.duckdb"
    not_duckdb.write_text("hello")
    with pytest.raises(WarehousePathError, match="is a file but not a DuckDB database. Fix:"):
        with connect(not_duckdb, read_only=True):
            pass
    assert not_duckdb.read_text() == "hello"


class UnwritableFlag:
    """A wait flag on a read-only filesystem: every write to it fails with EROFS."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def touch(self) -> None:
        self.attempts.append("touch")
        raise OSError(errno.EROFS, "Read-only file system")

    def unlink(self, missing_ok: bool = False) -> None:
        self.attempts.append("unlink")
        raise OSError(errno.EROFS, "Read-only file system")

    def exists(self) -> bool:
        return False


def test_read_only_open_succeeds_when_the_wait_flag_cannot_be_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "flywheel.duckdb"
    with connect(db_path):
        pass
    flag = UnwritableFlag()
    monkeypatch.setattr(store, "waiting_flag", lambda path: flag)
    with connect(db_path, read_only=True) as con:
        assert con.execute("select count(*) from rounds").fetchone() == (0,)
    assert "unlink" in flag.attempts


def test_a_waiting_reader_still_opens_when_the_wait_flag_cannot_be_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "flywheel.duckdb"
    with connect(db_path):
        pass
    real_connect = duckdb.connect
    refusals = ['IO Error: Could not set lock on file "x": Conflicting lock is held (PID 1)']

    def held_once_then_free(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if refusals:
            raise duckdb.IOException(refusals.pop())
        return real_connect(path, read_only=read_only)

    flag = UnwritableFlag()
    monkeypatch.setattr(store, "waiting_flag", lambda path: flag)
    monkeypatch.setattr(store.duckdb, "connect", held_once_then_free)
    with connect(db_path, read_only=True, timeout_s=30) as con:
        assert con.execute("select count(*) from battles").fetchone() == (0,)
    assert flag.attempts == ["touch", "unlink"]


READ_ONLY_QUERY = textwrap.dedent(
    """
    import sys
    from flywheel.warehouse.store import connect
    with connect(sys.argv[1], read_only=True) as con:
        print(con.execute("select count(*) from rounds").fetchone()[0])
    """
)


def test_a_warehouse_on_a_read_only_mount_can_be_queried(tmp_path: Path) -> None:
    """A real read-only bind mount, in a private user and mount namespace (`unshare -rm`)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a private read-only mount")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available here: {probe.stderr.decode().strip()}")
    folder = tmp_path / "ro"
    folder.mkdir()
    with connect(folder / "flywheel.duckdb"):
        pass
    script = tmp_path / "query.py"
    script.write_text(READ_ONLY_QUERY)
    mount_read_only = (
        f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} {folder}"
    )
    proof = f"! touch {folder}/probe 2>/dev/null"
    query = f"{sys.executable} {script} {folder}/flywheel.duckdb"
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"{mount_read_only} && {proof} && {query}"],
        capture_output=True,
        text=True,
        cwd=Path(store.__file__).parent.parent,
        env={"PYTHONPATH": str(Path(store.__file__).parent.parent), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
