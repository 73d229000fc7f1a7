"""What a logs ingest stores, as one digest per table: the check that a faster ingest stores the
same rows (same ids, same redactions) as the one before it.

    python benchmarks/logs_tables_digest.py DIR [--batch-size 1000]   # DIR: logs.*.jsonl
    python benchmarks/logs_tables_digest.py DAY_DIR --glob 'day-*.jsonl'  # a sandbox traffic day

Ingests every `DIR/logs.*.jsonl` (or the files `--glob` names; `bench_logs.py --arm generate --workdir DIR` writes them)
into a fresh warehouse under DIR (`add_log_files`, the benchmark's config with
`prompts.batch_size` as given, salt `bench-salt`), then prints, for each table the ingest writes to, its
row count and the sha256 of its rows in key order, every column but the wall-clock times of the
write (`added_at`, `created_at`) and the pool's read path. Run it before and after a change to
the ingest on the same DIR: equal lines mean byte-identical tables.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_logs import SALT_ENV, bench_config  # noqa: E402

WALL_CLOCK_COLUMNS = frozenset({"added_at", "created_at"})
TABLE_KEYS = {
    "log_files": "path, bytes_read",
    "log_conversations": "conversation_id",
    "log_turns": "conversation_id, turn_index",
    "feedback": "feedback_id",
    "prompts": "prompt_id",
    "prompt_occurrences": "prompt_id, file_sha256, line_no",
}


def table_digest(con: object, table: str, order_by: str) -> tuple[int, str]:
    """(rows, sha256 of the rows' text in `order_by` order, wall-clock columns left out)."""
    columns = [
        name
        for name, *_ in con.execute(f"describe {table}").fetchall()  # type: ignore[attr-defined]
        if name not in WALL_CLOCK_COLUMNS
    ]
    query = f"select {', '.join(columns)} from {table} order by {order_by}"
    digest, n_rows = hashlib.sha256(), 0
    cursor = con.execute(query)  # type: ignore[attr-defined]
    while rows := cursor.fetchmany(10_000):
        for row in rows:
            digest.update(repr(row).encode())
            n_rows += 1
    return n_rows, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs_dir", type=Path, help="a folder of logs.*.jsonl files")
    parser.add_argument("--glob", default="logs.*.jsonl", help="the log files in the folder")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the benchmark's")
    parser.add_argument(
        "--worker-min-bytes",
        type=int,
        default=None,
        help="files with this many new bytes are built in a worker process (default: the "
        "ingest's; 0: every file)",
    )
    args = parser.parse_args()
    logs = sorted(args.logs_dir.glob(args.glob))
    if not logs:
        sys.exit(
            f"no {args.glob} in {str(args.logs_dir)!r}. Fix: generate them with "
            "`python benchmarks/bench_logs.py --arm generate --workdir DIR`, or name them "
            "with --glob."
        )
    os.environ.setdefault(SALT_ENV, "bench-salt")
    from flywheel.pool import logs_worker
    from flywheel.pool.logs_ingest import add_log_files
    from flywheel.warehouse.store import connect_warehouse

    if args.worker_min_bytes is not None:
        logs_worker.WORKER_MIN_BYTES = args.worker_min_bytes

    workdir = Path(tempfile.mkdtemp(prefix="digest_", dir=args.logs_dir))
    config = bench_config(workdir, "digest")
    if args.batch_size is not None:
        prompts = config.prompts.model_copy(update={"batch_size": args.batch_size})
        config = config.model_copy(update={"prompts": prompts})
    report = add_log_files(config, logs)
    print(f"ingest: {report.n_conversations:,} conversations, {report.wall_s:.1f} s")
    with connect_warehouse(config.warehouse) as con:
        for table, order_by in TABLE_KEYS.items():
            n_rows, sha = table_digest(con, table, order_by)
            print(f"{table:20} {n_rows:>9,} rows  {sha}")


if __name__ == "__main__":
    main()
