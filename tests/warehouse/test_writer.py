"""warehouse/writer.py: the row writer's failures, durability and sharing of the file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.config import EndpointConfig, WarehouseConfig
from flywheel.llm.calls import call_row
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writer import RowWriter
from tests.llm.test_calls import stored_calls

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseConfig:
    return WarehouseConfig(path=str(tmp_path / "calls.duckdb"), lock_timeout_s=5)


def test_a_failed_flush_reaches_the_waiting_callers(warehouse):
    async def main() -> None:
        writer = RowWriter(warehouse)
        writer.add("llm_calls", {"call_id": "x", "no_such_column": 1})
        try:
            with pytest.raises(ValueError, match="no_such_column"):
                await writer.committed()
            with pytest.raises(ValueError, match="no_such_column"):
                writer.add("llm_calls", {"call_id": "y"})
        finally:
            with pytest.raises(ValueError):
                await writer.close()

    asyncio.run(main())


KILLED_WRITER = """
import asyncio, os, signal, sys
from flywheel.config import EndpointConfig, WarehouseConfig
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.warehouse.writer import RowWriter
from tests.llm.test_calls import stored_calls
from flywheel.llm.calls import call_row

async def main():
    writer = RowWriter(WarehouseConfig(path=sys.argv[1], lock_timeout_s=10))
    endpoint = EndpointConfig(name="e", base_url="http://127.0.0.1:9/v1", model="m")
    for i in range(int(sys.argv[2])):
        request = ChatRequest.of([{"role": "user", "content": f"q{i}"}], 0.0, 8)
        writer.add("llm_calls", call_row(endpoint, request, CallResult(f"c{i}", text="a"), 1))
        await writer.committed()
    os.kill(os.getpid(), signal.SIGKILL)  # right after the commit: nothing checkpointed

asyncio.run(main())
"""


def test_rows_committed_before_a_sigkill_survive_in_the_wal(warehouse):
    with connect(warehouse.path):
        pass  # created and migrated, no WAL left
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, warehouse.path, "25"], cwd=REPO_ROOT, timeout=60
    )
    assert child.returncode == -signal.SIGKILL
    wal = Path(f"{warehouse.path}.wal")
    assert wal.exists() and wal.stat().st_size > 0  # the rows live in the WAL only
    # another process (here: this one) reads them read-only, as `flywheel sql` does
    with connect(warehouse.path, read_only=True) as con:
        assert con.execute("select count(*) from llm_calls").fetchone()[0] == 25
    assert len(stored_calls(warehouse)) == 25  # and a writer reopens the file with them


READER = """
import sys, time
from flywheel.warehouse.store import connect
started = time.monotonic()
with connect(sys.argv[1], read_only=True, timeout_s=20) as con:
    n = con.execute("select count(*) from llm_calls").fetchone()[0]
print(n, round(time.monotonic() - started, 2))
"""


def test_another_process_gets_the_file_while_rows_keep_coming(warehouse):
    endpoint = EndpointConfig(name="e", base_url="http://127.0.0.1:9/v1", model="m")

    def row(i: int) -> dict:
        request = ChatRequest.of([{"role": "user", "content": f"q{i}"}], 0.0, 8)
        return call_row(endpoint, request, CallResult(f"c{i}", text="a"), 1)

    async def main() -> tuple[int, str]:
        writer = RowWriter(warehouse, hold_s=0.2, release_gap_s=0.1)
        writer.add("llm_calls", row(-1))
        await writer.committed()  # the file exists and is held
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, warehouse.path],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        i = 0
        try:
            while reader.poll() is None:  # a row every 5 ms: the writer is never idle
                writer.add("llm_calls", row(i))
                await writer.committed()
                await asyncio.sleep(0.005)
                i += 1
        finally:
            await writer.close()
        return reader.returncode, reader.stdout.read()

    returncode, out = asyncio.run(main())
    assert returncode == 0, out
    n_seen, waited_s = out.split()
    assert int(n_seen) >= 1 and float(waited_s) < 20


def test_a_waiting_process_makes_a_holding_writer_let_go(tmp_path) -> None:
    """While the row writer keeps the file open, another process that waits gets in quickly."""

    db_path = tmp_path / "w.duckdb"
    with connect(db_path):
        pass
    reader = (
        "import sys, time; from warehouse.store import connect\n"
        "started = time.monotonic()\n"
        "with connect(sys.argv[1], read_only=True, timeout_s=20) as con:\n"
        "    con.execute('select count(*) from llm_calls').fetchone()\n"
        "print(time.monotonic() - started)\n"
    )

    async def keep_writing() -> float:
        writer = RowWriter(WarehouseConfig(path=str(db_path), lock_timeout_s=30), hold_s=600)
        waited = asyncio.create_task(
            asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", reader, str(db_path)],
                capture_output=True,
                text=True,
                check=True,
            )
        )
        n_row = 0
        while not waited.done():
            writer.add(
                "llm_calls",
                {
                    "call_id": f"c{n_row}",
                    "endpoint": "e",
                    "model": "m",
                    "request_json": "{}",
                    "created_at": now_utc(),
                },
            )
            await asyncio.sleep(0.01)
            n_row += 1
        await writer.close()
        return float((await waited).stdout.strip())

    assert asyncio.run(keep_writing()) < 15  # the writer would otherwise hold the file 600 s
