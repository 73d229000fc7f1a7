"""The sandbox's prompt pool: generated on the first run, refilled for long schedules.

The sandbox's skill tasks enter the pool through the same ingest path as a user's file
(`add_prompt_records`: dedup against every stored prompt, decontamination against the eval
split). Before each run's rounds the pool is topped up from fresh seeds whenever the unused
prompts would not fill the next slices, so a nightly schedule on the demo config runs for a
year. A user's own pool (`prompts.sandbox_pool_size: 0`) is never refilled: when it runs out
the draw still fails with `PoolExhaustedError`, which says what to add.
"""

from __future__ import annotations

import math

from flywheel.config import Config
from flywheel.logs import step_logger
from flywheel.pool.eval_set import eval_prompt_ids, pool_available
from flywheel.pool.ingest import add_prompt_records
from flywheel.warehouse.store import connect_warehouse, read_query

SANDBOX_SOURCE = "sandbox"
SANDBOX_POOL_SEED_OFFSET = 7919  # keeps the pool's tasks apart from the student's seed tasks
REFILL_ATTEMPTS = 5  # generations tried when deduplication rejects part of a refill
# a refill generates this much more than is missing: dedup and decontamination reject part of
# every batch (a quarter of the demo's, whose prompts share their stated answer format), and
# without headroom each attempt only shrinks the shortfall, which five attempts left at one
REFILL_HEADROOM = 1.5
REFILL_SEED_STRIDE = 1000  # refill seeds: base + stride * (sandbox prompts held) + attempt


def _n_sandbox_prompts(config: Config) -> int:
    with connect_warehouse(config.warehouse) as con:
        return con.execute(read_query("prompts_count_of_source"), [SANDBOX_SOURCE]).fetchone()[0]


def _n_unused(config: Config) -> int:
    with connect_warehouse(config.warehouse) as con:
        return pool_available(con)


def prompts_needed(config: Config, n_slices: int) -> int:
    """Unused pool prompts the next `n_slices` slices need, plus the eval set if not drawn."""
    eval_needed = 0 if eval_prompt_ids(config) else config.prompts.eval_size
    return eval_needed + n_slices * config.prompts.slice_size


def add_sandbox_tasks(config: Config, n_tasks: int, seed: int) -> int:
    """Generate `n_tasks` skill tasks under `seed` and ingest them; the number added."""
    from flywheel.sandbox.skills import generate_tasks

    tasks = generate_tasks(n_tasks, seed=seed, difficulty=config.sandbox.task_difficulty)
    records = [{"prompt": t.prompt, "category": t.skill} for t in tasks]
    report = add_prompt_records(config, records, SANDBOX_SOURCE)
    step_logger(__name__).info(report.summary())
    return report.n_added


def fill_sandbox_pool(config: Config, n_slices: int | None = None) -> None:
    """`prompts.sandbox_pool_size` tasks into an empty pool; later, new tasks from fresh seeds
    until the unused prompts fill the next `n_slices` slices (default `schedule.rounds`).

    Each refill's seed follows from how many sandbox prompts the warehouse holds, so it is
    new every time and the same on a re-run of the same history.
    """
    if not config.prompts.sandbox_pool_size:
        return
    base_seed = config.prompts.seed + SANDBOX_POOL_SEED_OFFSET
    if not _n_sandbox_prompts(config):
        add_sandbox_tasks(config, config.prompts.sandbox_pool_size, base_seed)
    n_needed = prompts_needed(config, n_slices or config.schedule.rounds)
    for attempt in range(REFILL_ATTEMPTS):
        n_missing = n_needed - _n_unused(config)
        if n_missing <= 0:
            return
        step_logger(__name__).info(
            "sandbox pool: %d unused prompts, %d needed; generating new tasks",
            n_needed - n_missing,
            n_needed,
        )
        seed = base_seed + REFILL_SEED_STRIDE * _n_sandbox_prompts(config) + attempt
        add_sandbox_tasks(config, math.ceil(n_missing * REFILL_HEADROOM), seed)
