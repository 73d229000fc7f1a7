"""Processes the DuckLake tests start: writers, a reader, a writer to be killed.

`python -m tests.warehouse.lake_processes <config.yaml> rows START STOP` writes ratings and
llm_calls rows for keys START..STOP through a RowWriter (what the answer and judge steps use);
`read STOP_FILE` runs an analyst's query in a loop until STOP_FILE exists and prints how many
ran; `batches` writes numbered batches (one row in each of three tables, one transaction
each) until it is killed, printing each batch number once committed; `steps SANDBOX_URL
PROMPT_IDS` runs the answer and judge steps of round 1 on those (comma-separated) prompts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from flywheel.config import Config, load_config
from flywheel.warehouse.catalog import run_read_only_query
from flywheel.warehouse.store import connect_warehouse, transaction
from flywheel.warehouse.writer import RowWriter
from flywheel.warehouse.writes import insert_new

ANALYST_QUERY = (
    "select r.round_id, count(*) as n, count(distinct c.call_id) as n_calls "
    "from ratings as r left join llm_calls as c on c.call_id = 'call-' || r.model_id "
    "group by r.round_id"
)


def rating_row(key: int) -> dict:
    return {"round_id": 1, "model_id": f"m{key:05d}", "rating": float(key), "n_battles": 1}


def call_row(key: int) -> dict:
    return {
        "call_id": f"call-m{key:05d}",
        "endpoint": "judge",
        "model": "sandbox-judge",
        "request_json": "{}",
        "response_text": f"reply {key}",
        "round_id": 1,
    }


def write_rows(config: Config, start: int, stop: int) -> None:
    async def main() -> None:
        async with RowWriter(config.warehouse) as writer:
            for key in range(start, stop):
                writer.add("ratings", rating_row(key))
                writer.add("llm_calls", call_row(key))
                if key % 10 == 0:
                    await asyncio.sleep(0.001)  # let a flush run between additions

    asyncio.run(main())
    print("written", stop - start, flush=True)


def read_until(config: Config, stop_file: Path) -> None:
    n_queries = 0
    while not stop_file.exists() or n_queries == 0:
        with connect_warehouse(config.warehouse, read_only=True) as con:
            run_read_only_query(con, ANALYST_QUERY)
        n_queries += 1
    print("queries", n_queries, flush=True)


def write_batches(config: Config) -> None:
    batch = 0
    while True:
        with connect_warehouse(config.warehouse) as con, transaction(con):
            insert_new(con, "ratings", [rating_row(batch)])
            insert_new(con, "llm_calls", [call_row(batch)])
            insert_new(
                con,
                "model_versions",
                [{"version_id": f"m{batch:05d}", "checkpoint_path": "/x", "status": "candidate"}],
            )
        print("committed", batch, flush=True)
        batch += 1
        time.sleep(0.01)


def run_steps(config: Config, live_url: str, prompt_ids: list[str]) -> None:
    """Answer and judge `prompt_ids` with the sandbox running at `live_url`."""
    from tests.tasks.answer_judge_fixtures import on_sandbox, run_round_steps

    answers, pairs, judged = run_round_steps(on_sandbox(config, live_url), prompt_ids)
    assert answers.n_failed == 0 and judged.n_errors == 0
    print("battles", len(pairs), flush=True)


def main(argv: list[str]) -> None:
    config = load_config(argv[0])
    if argv[1] == "rows":
        write_rows(config, int(argv[2]), int(argv[3]))
    elif argv[1] == "read":
        read_until(config, Path(argv[2]))
    elif argv[1] == "batches":
        write_batches(config)
    elif argv[1] == "steps":
        run_steps(config, argv[2], argv[3].split(","))
    else:
        raise SystemExit(f"unknown action {argv[1]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
