"""Step 1 of the round: the fresh slice D_i of the pool that this round battles on."""

from __future__ import annotations

from flywheel.config import Config
from flywheel.pool.eval_set import ADD_HINT, PoolExhaustedError, ensure_eval_split, pool_available
from flywheel.warehouse.store import (
    connect_warehouse,
    read_query,
    registered,
    transaction,
)


def draw_round_slice(config: Config, round_id: int) -> list[str]:
    """The prompt ids of slice D_round_id, assigned on the first call and returned again after.

    The eval set is drawn first when there is none (it must never become training data). A
    slice takes the next `slice_size` active pool prompts no slice holds, in a seeded order;
    slices are disjoint. A later call returns the same ids, less any that an eval prompt
    added since has contaminated. When the pool cannot fill the slice, nothing is assigned
    and `PoolExhaustedError` says how many prompts are missing.
    """
    ensure_eval_split(config)
    seed = str(config.prompts.seed)
    size = config.prompts.slice_size
    with connect_warehouse(config.warehouse) as con, transaction(con):
        assigned = con.execute(read_query("prompts_slice_ids"), [seed, round_id]).fetchall()
        if assigned:
            return [prompt_id for prompt_id, status in assigned if status == "active"]
        n_available = pool_available(con)
        if n_available < size:
            raise PoolExhaustedError(
                f"round {round_id} needs {size:,} fresh prompts (prompts.slice_size) but the "
                f"pool has only {n_available:,} unused active prompts: {size - n_available:,} "
                f"missing. Fix: {ADD_HINT}; or lower prompts.slice_size."
            )
        drawn = con.execute(read_query("prompts_draw_slice"), [seed, size]).df()
        with registered(con, "_drawn_ids", drawn):
            con.execute(read_query("prompts_assign_slice"), [round_id])
        return list(drawn["prompt_id"])
