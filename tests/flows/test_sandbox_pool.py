"""The sandbox pool refills from fresh seeds for long schedules; a user's pool does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.flows.sandbox_pool import fill_sandbox_pool
from flywheel.pool.eval_set import PoolExhaustedError, eval_prompt_ids
from flywheel.pool.ingest import add_prompt_records
from flywheel.tasks.draw import draw_round_slice
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in

N_POOL = 40
N_ROUNDS = 8  # 8 slices of 10 plus an eval set of 10: twice what the first pool holds


def test_a_small_sandbox_pool_refills_for_more_draws_than_it_holds(tmp_path: Path) -> None:
    config = load_config_in(
        tmp_path,
        prompts={"sandbox_pool_size": N_POOL, "eval_size": 10, "slice_size": 10},
        schedule={"rounds": 1},
    )
    slices = []
    for round_id in range(1, N_ROUNDS + 1):
        fill_sandbox_pool(config)  # what `prepare` does before each nightly round
        slices.append(draw_round_slice(config, round_id))
    drawn = [prompt_id for ids in slices for prompt_id in ids]
    assert all(len(ids) == 10 for ids in slices)
    assert len(set(drawn)) == len(drawn) == N_ROUNDS * 10 > N_POOL, "slices are disjoint"
    assert not set(drawn) & set(eval_prompt_ids(config)), "no eval prompt is drawn for training"
    with connect(tmp_path / "flywheel.duckdb") as con:
        n_prompts, n_texts, n_eval_texts_drawn = con.execute(
            "select count(*), count(distinct messages), "
            "count(*) filter (where slice_id is not null and messages in "
            "(select messages from prompts where split = 'eval')) "
            "from prompts where source = 'sandbox'"
        ).fetchone()
    assert n_prompts == n_texts > N_POOL, "the new prompts are distinct"
    assert n_eval_texts_drawn == 0


def test_a_run_of_more_rounds_than_the_schedule_is_prepared_for_all_of_them(
    tmp_path: Path, smoke_student: Path
) -> None:
    """`flywheel run --rounds 4` on a schedule of one round: the pool holds four slices."""
    from flywheel.flows.flywheel_flow import prepare

    config = load_config_in(
        tmp_path,
        prompts={"sandbox_pool_size": 20, "eval_size": 10, "slice_size": 10},
        schedule={"rounds": 1},
        student={"path": str(smoke_student), "build_if_missing": False},
    )
    prepare.fn(config, 4)
    slices = [draw_round_slice(config, round_id) for round_id in range(1, 5)]
    assert [len(ids) for ids in slices] == [10, 10, 10, 10]


def test_a_refill_changes_nothing_when_the_pool_holds_enough(tmp_path: Path) -> None:
    config = load_config_in(tmp_path, prompts={"sandbox_pool_size": N_POOL, "eval_size": 10})
    config = config.model_copy(
        update={"prompts": config.prompts.model_copy(update={"slice_size": 10})}
    )
    fill_sandbox_pool(config)
    fill_sandbox_pool(config)
    with connect(tmp_path / "flywheel.duckdb") as con:
        assert con.execute("select count(*) from prompts").fetchone()[0] == N_POOL


def test_a_users_own_pool_running_out_is_still_a_clear_error(tmp_path: Path) -> None:
    config = load_config_in(
        tmp_path, prompts={"sandbox_pool_size": 0, "eval_size": 2, "slice_size": 3}
    )
    add_prompt_records(
        config, [{"prompt": f"question number {i} of five"} for i in range(5)], "mine"
    )
    fill_sandbox_pool(config)
    assert len(draw_round_slice(config, 1)) == 3
    fill_sandbox_pool(config)
    with pytest.raises(PoolExhaustedError, match="round 2 needs 3 fresh prompts"):
        draw_round_slice(config, 2)
