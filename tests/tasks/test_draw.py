"""Step 1: each round draws a fresh slice of the pool, never the eval set."""

from __future__ import annotations

import pytest

from flywheel.pool.eval_set import PoolExhaustedError, eval_prompt_ids
from flywheel.tasks.draw import draw_round_slice
from tests.conftest import load_config_in
from tests.pool.pool_helpers import fill_pool, rows


def test_slices_are_disjoint_idempotent_and_never_eval(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 4, "slice_size": 5})
    fill_pool(config, {"a": 10, "b": 10})
    first = draw_round_slice(config, 1)
    second = draw_round_slice(config, 2)
    assert len(first) == len(second) == 5
    assert not set(first) & set(second)
    assert not (set(first) | set(second)) & set(eval_prompt_ids(config))
    assert draw_round_slice(config, 1) == first
    assert rows(config, "select count(*) from prompts where slice_id = 1")[0][0] == 5


def test_an_exhausted_pool_refuses_the_round_and_says_how_many_are_missing(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 4, "slice_size": 5})
    fill_pool(config, {"a": 12})
    draw_round_slice(config, 1)
    with pytest.raises(PoolExhaustedError) as error:
        draw_round_slice(config, 2)
    message = str(error.value)
    assert "round 2 needs 5 fresh prompts" in message and "only 3 unused" in message
    assert "2 missing" in message and "flywheel prompts add FILE" in message
    assert rows(config, "select count(*) from prompts where slice_id = 2")[0][0] == 0
