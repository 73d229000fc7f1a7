"""Warehouse backends compared: the judge step's writes, and an analyst's query during them.

For each backend (the DuckDB file; DuckLake on a SQLite catalog; DuckLake on a Postgres
catalog, started here with Debian's postgresql binaries when they are installed) a fresh
warehouse gets `--n-battles` battles written the way the judge step writes them: through one
RowWriter, per battle two `llm_calls` rows, two `judgments` and one `battles` row, added as
the games finish (an event-loop yield every few battles). Meanwhile an analyst's query (outcome
counts joined with the judgments) loops in another process. Figures per backend: rows/s of the
writes (from the first row added to the writer's close), and the analyst query's median and
worst latency during the writes, with how many queries ran. Printed as ratios to the file,
then one JSON line.

    python benchmarks/bench_warehouse.py [--n-battles 2000] [--no-postgres]

With `--flush`, instead: what one flush's duplicate check costs as `llm_calls` grows (0, 100k,
1M stored rows, `--sizes`). A flush is one transaction writing a judge step's 20 call rows, 2 of
them stored already, through `insert_new` (an anti-join against the whole table), against the
same write with an ART index on `call_id` probed for the batch's keys (the alternative DuckDB
offers). Each is timed on an open connection (median of `--n-flushes`) and as the RowWriter's
burst (open the file, flush, close with its checkpoint; median of 3), with the index's build.

    python benchmarks/bench_warehouse.py --flush [--sizes 0,100000,1000000] [--n-flushes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flywheel.config import WarehouseConfig  # noqa: E402
from flywheel.warehouse.store import connect_warehouse  # noqa: E402
from flywheel.warehouse.writer import RowWriter  # noqa: E402

ANALYST_QUERY = (
    "select b.outcome, count(*) as n_battles, avg(j.score_first) as mean_score_first "
    "from battles as b join judgments as j using (battle_id) group by b.outcome"
)
YIELD_EVERY = 8  # battles added between two event-loop yields (games finishing in bursts)


def judge_rows(i: int) -> dict[str, list[dict]]:
    """The rows the judge step writes for one battle (two games, both orders)."""
    battle_id = f"battle-{i:07d}"
    calls, judgments = [], []
    for order in ("AB", "BA"):
        call_id = f"call-{i:07d}-{order}"
        calls.append(
            {
                "call_id": call_id,
                "endpoint": "judge",
                "model": "sandbox-judge",
                "request_json": json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}),
                "response_text": "Assistant 1: 7\nAssistant 2: 4",
                "finish_reason": "stop",
                "prompt_tokens": 180,
                "completion_tokens": 12,
                "latency_ms": 200.0,
                "cost_usd": 0.0,
                "n_attempts": 1,
                "round_id": 1,
            }
        )
        judgments.append(
            {
                "judgment_id": f"judgment-{i:07d}-{order}",
                "battle_id": battle_id,
                "round_id": 1,
                "game_order": order,
                "judge": "judge",
                "prompt_version": "v1",
                "raw_text": "Assistant 1: 7\nAssistant 2: 4",
                "score_first": 7.0,
                "score_second": 4.0,
                "verdict": "first",
                "parse_ok": True,
                "call_id": call_id,
            }
        )
    battle = {
        "battle_id": battle_id,
        "round_id": 1,
        "prompt_id": f"p{i:07d}",
        "purpose": "train",
        "model_a": "v0",
        "model_b": "ref:strong",
        "response_a_id": f"ra{i}",
        "response_b_id": f"rb{i}",
        "judge": "judge",
        "score_a": 5.5,
        "score_b": 5.5,
        "score_gap": 0.0,
        "outcome": ("win", "loss", "tie")[i % 3],
    }
    return {"llm_calls": calls, "judgments": judgments, "battles": [battle]}


async def write_judge_rows(warehouse: WarehouseConfig, n_battles: int) -> tuple[int, float]:
    """Write the rows of `n_battles`; (rows, seconds)."""
    n_rows = 0
    started = time.perf_counter()
    async with RowWriter(warehouse) as writer:
        for i in range(n_battles):
            for table, rows in judge_rows(i).items():
                for row in rows:
                    writer.add(table, row)
                    n_rows += 1
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
    return n_rows, time.perf_counter() - started


def read_until(settings: dict, stop_file: Path, out_file: Path) -> None:
    """The analyst: run the query until `stop_file` exists; write the latencies (s)."""
    warehouse = WarehouseConfig(**settings)
    latencies: list[float] = []
    errors: list[str] = []
    while not stop_file.exists():
        started = time.perf_counter()
        try:
            with connect_warehouse(warehouse, read_only=True) as con:
                con.execute(ANALYST_QUERY).fetchall()
        except Exception as e:  # noqa: BLE001 - counted and reported, the loop goes on
            errors.append(f"{type(e).__name__}: {str(e)[:200]}")
        latencies.append(time.perf_counter() - started)
    out_file.write_text(json.dumps({"latencies": latencies, "errors": errors}))


def measure(name: str, settings: dict, n_battles: int, folder: Path) -> dict:
    warehouse = WarehouseConfig(**settings)
    with connect_warehouse(warehouse):
        pass  # created and migrated before the clock starts
    stop_file, out_file = folder / f"{name}.stop", folder / f"{name}.json"
    reader = subprocess.Popen(
        [sys.executable, __file__, "--reader", json.dumps(settings), str(stop_file), str(out_file)],
        cwd=REPO_ROOT,
    )
    time.sleep(3.0)  # the reader imports and opens the warehouse once before the writes
    n_rows, wall_s = asyncio.run(write_judge_rows(warehouse, n_battles))
    stop_file.touch()
    reader.wait(timeout=600)
    read = json.loads(out_file.read_text())
    latencies = read["latencies"][1:] or read["latencies"]  # the first pays the imports
    with connect_warehouse(warehouse, read_only=True) as con:
        stored = con.execute("select count(*) from battles").fetchone()[0]
    assert stored == n_battles, f"{name}: {stored} battles stored of {n_battles}"
    figures = {
        "rows_per_s": n_rows / wall_s,
        "write_s": wall_s,
        "query_median_s": statistics.median(latencies),
        "query_max_s": max(latencies),
        "n_queries": len(latencies),
        "n_query_errors": len(read["errors"]),
    }
    print(
        f"{name:16s} {figures['rows_per_s']:9.0f} rows/s  ({n_rows} rows in {wall_s:.1f} s); "
        f"analyst query during the writes: median {figures['query_median_s'] * 1000:.0f} ms, "
        f"worst {figures['query_max_s'] * 1000:.0f} ms, {len(latencies)} queries, "
        f"{len(read['errors'])} failed"
    )
    return figures


FLUSH_ROWS, FLUSH_STORED = 20, 2  # call rows per flush, of which already stored
FILL_CALLS = """
insert into llm_calls (call_id, endpoint, model, request_json, response_text, finish_reason,
    prompt_tokens, completion_tokens, latency_ms, cost_usd, n_attempts, round_id, created_at)
select sha256('stored-' || i::varchar), 'judge', 'sandbox-judge', '{"messages": []}',
    'Assistant 1: 7', 'stop', 180, 12, 200.0, 0.0, 1, 1, now()
from range(?) as t(i)
"""


def flush_rows(n_stored: int, flush: int) -> list[dict]:
    """One flush's call rows: FLUSH_STORED already stored (when any are), the rest new."""
    rows = [
        call for i in range(FLUSH_ROWS // 2) for call in judge_rows(flush * 1000 + i)["llm_calls"]
    ]
    for i, row in enumerate(rows[: FLUSH_STORED if n_stored else 0]):
        row["call_id"] = hashlib.sha256(
            f"stored-{(flush * 7919 + i) % n_stored}".encode()
        ).hexdigest()
    return rows


def write_by_index_probe(con, rows: list[dict]) -> int:
    """The alternative: probe `call_id`'s index for the batch's keys, insert the others."""
    from flywheel.warehouse.writes import insert_new

    keys = [row["call_id"] for row in rows]
    placeholders = ", ".join("?" for _ in keys)
    stored = {
        k
        for (k,) in con.execute(
            f"select call_id from llm_calls where call_id in ({placeholders})", keys
        ).fetchall()
    }
    new = [row for row in rows if row["call_id"] not in stored]
    return insert_new(con, "llm_calls", new) if new else 0


def time_flushes(
    warehouse: WarehouseConfig, n_stored: int, write, n_flushes: int, tag: int
) -> dict:
    """Median ms of a flush on an open connection, and of a burst (open, flush, close)."""
    from flywheel.warehouse.store import transaction

    on_open, bursts = [], []
    with connect_warehouse(warehouse) as con:
        for flush in range(n_flushes):
            rows = flush_rows(n_stored, tag + flush)
            started = time.perf_counter()
            with transaction(con):
                added = write(con, rows)
            on_open.append(time.perf_counter() - started)
            assert added == FLUSH_ROWS - (FLUSH_STORED if n_stored else 0), added
    for flush in range(3):
        rows = flush_rows(n_stored, tag + n_flushes + flush)
        started = time.perf_counter()
        with connect_warehouse(warehouse) as con, transaction(con):
            write(con, rows)
        bursts.append(time.perf_counter() - started)
    return {
        "flush_ms": 1000 * statistics.median(on_open),
        "burst_ms": 1000 * statistics.median(bursts),
    }


def measure_flushes(n_stored: int, n_flushes: int, folder: Path) -> dict:
    """Both ways of checking for stored keys, on a warehouse holding `n_stored` calls."""
    from flywheel.warehouse.writes import insert_new

    warehouse = WarehouseConfig(path=str(folder / f"flush-{n_stored}.duckdb"))
    with connect_warehouse(warehouse) as con:
        con.execute(FILL_CALLS, [n_stored])
    anti_join = time_flushes(
        warehouse, n_stored, lambda c, r: insert_new(c, "llm_calls", r), n_flushes, 1
    )
    started = time.perf_counter()
    with connect_warehouse(warehouse) as con:
        con.execute("create index llm_calls_call_id on llm_calls (call_id)")
    index_build_s = time.perf_counter() - started
    probe = time_flushes(warehouse, n_stored, write_by_index_probe, n_flushes, 10_000)
    return {"anti_join": anti_join, "index_probe": probe, "index_build_s": index_build_s}


def main_flush(sizes: list[int], n_flushes: int) -> None:
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-flush-") as folder:
        for n_stored in sizes:
            row = results[n_stored] = measure_flushes(n_stored, n_flushes, Path(folder))
            anti, probe = row["anti_join"], row["index_probe"]
            print(
                f"{n_stored:>9,} calls stored: flush {anti['flush_ms']:7.1f} ms (anti-join) vs"
                f" {probe['flush_ms']:7.1f} ms (index probe, x{probe['flush_ms'] / anti['flush_ms']:.2f});"
                f" burst {anti['burst_ms']:7.1f} vs {probe['burst_ms']:7.1f} ms"
                f" (x{probe['burst_ms'] / anti['burst_ms']:.2f}); index built in {row['index_build_s']:.1f} s"
            )
    base = results[sizes[0]]["anti_join"]["flush_ms"]
    for n_stored, row in results.items():
        print(
            f"{n_stored:>9,} calls stored: anti-join flush x{row['anti_join']['flush_ms'] / base:.2f} of the empty table's"
        )
    print(
        json.dumps(
            {"benchmark": "bench_warehouse_flush", "flush_rows": FLUSH_ROWS, "results": results}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-battles", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--reader", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--flush", action="store_true", help="the duplicate check's cost by size")
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--n-flushes", type=int, default=10)
    args = parser.parse_args()
    if args.flush:
        main_flush([int(n) for n in args.sizes.split(",")], args.n_flushes)
        return
    if args.reader:
        read_until(json.loads(args.reader[0]), Path(args.reader[1]), Path(args.reader[2]))
        return
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-warehouse-") as tmp:
        folder = Path(tmp)
        backends = {
            "file": {"path": str(folder / "file.duckdb"), "lock_timeout_s": 300},
            "ducklake-sqlite": {
                "backend": "ducklake",
                "catalog": f"sqlite:{folder / 'lake.sqlite'}",
                "data_path": str(folder / "lake-data"),
                "lock_timeout_s": 300,
            },
        }
        for name, settings in backends.items():
            results[name] = measure(name, settings, args.n_battles, folder)
        if not args.no_postgres:
            results |= measure_postgres(args.n_battles, folder)
    file = results["file"]
    for name, figures in results.items():
        if name == "file":
            continue
        print(
            f"{name} / file: writes {figures['rows_per_s'] / file['rows_per_s']:.2f}x the rows/s; "
            f"analyst query median {figures['query_median_s'] / file['query_median_s']:.2f}x, "
            f"worst {figures['query_max_s'] / file['query_max_s']:.2f}x the latency"
        )
    print(json.dumps({"n_battles": args.n_battles, "backends": results}))


def measure_postgres(n_battles: int, folder: Path) -> dict[str, dict]:
    import os

    from tests.warehouse.servers import PG_PASSWORD, postgres_bin, postgres_server

    if postgres_bin() is None:
        print("ducklake-postgres: skipped (no postgresql binaries; apt-get install postgresql)")
        return {}
    os.environ["PGPASSWORD"] = PG_PASSWORD
    with postgres_server() as server:
        settings = {
            "backend": "ducklake",
            "catalog": server.create_database("bench"),
            "data_path": str(folder / "pg-lake-data"),
            "lock_timeout_s": 300,
        }
        return {"ducklake-postgres": measure("ducklake-postgres", settings, n_battles, folder)}


if __name__ == "__main__":
    main()
