"""The held-out eval set: drawn once, stratified and seeded; the pool decontaminated against it."""

from __future__ import annotations

import duckdb
import pandas as pd

from flywheel.config import Config
from flywheel.pool.index import (
    PromptIndex,
    add_to_index,
    find_pool_overlaps,
    lsh_params_for,
    mark_contaminated,
    texts_of,
)
from flywheel.warehouse.store import (
    connect_warehouse,
    read_query,
    registered,
    transaction,
)

ADD_HINT = (
    "add more with `flywheel prompts add FILE` (JSONL or Parquet; one record per line with a "
    '`prompt` or `messages` field, e.g. {"prompt": "...", "category": "..."})'
)


class PoolExhaustedError(RuntimeError):
    """The pool cannot fill the eval set or the next slice; the message says what is missing."""


def ensure_eval_split(config: Config) -> int:
    """The size of the held-out eval set, drawn now if there is none yet.

    Once any eval prompt exists (drawn earlier, or brought with `prompts add --eval`), the set
    is fixed and nothing more is drawn, whatever `eval_size` says; add more with --eval. A
    draw takes `eval_size` active pool prompts that no round has battled, stratified by
    category with proportional quotas, in a seeded order; the rest of the pool is then
    decontaminated against it, and both land in one transaction.
    """
    existing = eval_prompt_ids(config)
    if existing:
        return len(existing)
    size = config.prompts.eval_size
    with connect_warehouse(config.warehouse) as con:
        n_available = pool_available(con)
        if n_available < size:
            raise PoolExhaustedError(
                f"the held-out eval set needs {size:,} prompts (prompts.eval_size) but the pool "
                f"has only {n_available:,} active prompts no round has used: "
                f"{size - n_available:,} missing. Fix: {ADD_HINT}; or bring your own eval set "
                "with `flywheel prompts add FILE --eval`; or lower prompts.eval_size."
            )
        drawn = con.execute(
            read_query("prompts_draw_eval"), [str(config.prompts.seed), size, size]
        ).df()
    params = lsh_params_for(config)
    eval_index = PromptIndex.empty("eval")
    add_to_index(eval_index, params, config, list(drawn["prompt_id"]), texts_of(drawn["messages"]))
    overlaps = find_pool_overlaps(config, params, eval_index, skip=set(drawn["prompt_id"]))
    with connect_warehouse(config.warehouse) as con, transaction(con):
        if con.execute(read_query("prompts_eval_ids")).fetchall():
            return len(eval_prompt_ids_in(con))  # another process drew it meanwhile
        with registered(con, "_drawn_ids", drawn[["prompt_id"]]):
            con.execute(read_query("prompts_set_eval"))
        mark_contaminated(con, overlaps)
        return len(eval_prompt_ids_in(con))


def eval_prompt_ids(config: Config) -> list[str]:
    """The held-out eval prompts (active, split eval), sorted by id."""
    with connect_warehouse(config.warehouse) as con:
        return eval_prompt_ids_in(con)


def eval_prompt_ids_in(con: duckdb.DuckDBPyConnection) -> list[str]:
    """`eval_prompt_ids` on an open connection."""
    return [prompt_id for (prompt_id,) in con.execute(read_query("prompts_eval_ids")).fetchall()]


def prompt_stats(config: Config) -> dict[str, pd.DataFrame]:
    """Tables for `flywheel prompts stats`: totals, by source, by category, by split/slice/status."""
    names = {
        "summary": "prompts_stats_summary",
        "by source": "prompts_stats_by_source",
        "by category": "prompts_stats_by_category",
        "by split, slice and status": "prompts_stats_by_split",
    }
    with connect_warehouse(config.warehouse) as con:
        return {title: con.execute(read_query(query)).df() for title, query in names.items()}


def pool_available(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(read_query("prompts_pool_available")).fetchone()[0])
