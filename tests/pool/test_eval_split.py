"""The eval split and the pool: decontamination both ways, the seeded stratified draw, stats."""

from __future__ import annotations

import pytest

from flywheel.pool.eval_set import (
    PoolExhaustedError,
    ensure_eval_split,
    eval_prompt_ids,
    prompt_stats,
)
from flywheel.pool.ingest import add_prompt_file, add_prompt_records
from tests.conftest import load_config_in
from tests.pool.pool_helpers import DATA, counts, fill_pool, line_prompt, rows, story


def test_eval_prompts_pasted_into_the_pool_are_contaminated_with_the_match(smoke_config):
    add_prompt_file(smoke_config, DATA / "eval.jsonl", split="eval")
    path = DATA / "pool_contaminated.jsonl"
    report = add_prompt_file(smoke_config, path)
    assert counts(report) == (1, 0, 0, 3, 0, 0)
    eval_path = DATA / "eval.jsonl"
    train_id, edited_id, passage_id = (
        line_prompt(smoke_config, eval_path, n)[0] for n in (1, 2, 3)
    )
    assert line_prompt(smoke_config, path, 1)[1:4] == ("contaminated", None, train_id)
    assert line_prompt(smoke_config, path, 2)[1:4] == ("contaminated", None, edited_id)
    assert line_prompt(smoke_config, path, 3)[0] == passage_id  # verbatim: the eval row itself
    assert line_prompt(smoke_config, path, 4)[1] == "active"
    assert len(eval_prompt_ids(smoke_config)) == 3


def test_eval_prompts_added_after_the_pool_decontaminate_it(smoke_config):
    pool = DATA / "pool_contaminated.jsonl"
    add_prompt_file(smoke_config, pool)
    report = add_prompt_file(smoke_config, DATA / "eval.jsonl", split="eval")
    assert report.n_added == 3  # one of them was in the pool, unbattled: it moved to eval
    assert report.n_pool_decontaminated == 2
    assert "2 pool prompts overlap the eval set" in report.summary()
    assert [line_prompt(smoke_config, pool, n)[1] for n in (1, 2, 4)] == [
        "contaminated",
        "contaminated",
        "active",
    ]
    assert line_prompt(smoke_config, pool, 3)[4] == "eval"
    assert ensure_eval_split(smoke_config) == 3  # user eval prompts: nothing is drawn


# ------------------------------------------------------------------------ eval split, slices


def test_eval_split_is_stratified_seeded_and_fixed_once_drawn(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 10, "slice_size": 5})
    fill_pool(config, {"a": 30, "b": 15, "c": 5})
    assert ensure_eval_split(config) == 10
    drawn = eval_prompt_ids(config)
    by_category = dict(
        rows(config, "select category, count(*) from prompts where split = 'eval' group by all")
    )
    assert by_category == {"a": 6, "b": 3, "c": 1}
    fill_pool(config, {"d": 20})
    assert ensure_eval_split(config) == 10 and eval_prompt_ids(config) == drawn
    twin = load_config_in(tmp_path / "twin", prompts={"eval_size": 10, "slice_size": 5})
    fill_pool(twin, {"a": 30, "b": 15, "c": 5})
    ensure_eval_split(twin)
    assert eval_prompt_ids(twin) == drawn


def test_drawing_the_eval_set_decontaminates_the_pool(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 1, "slice_size": 1})
    shared = " ".join(f"common{k}" for k in range(14))
    add_prompt_records(config, [{"prompt": f"first {shared} tail"}], source="a")
    add_prompt_records(config, [{"prompt": f"second prompt here {shared} end"}], source="b")
    ensure_eval_split(config)
    statuses = rows(config, "select split, status, contaminated_by from prompts order by split")
    eval_id = eval_prompt_ids(config)[0]
    assert statuses == [("eval", "active", None), ("pool", "contaminated", eval_id)]


def test_an_instruction_every_eval_prompt_carries_is_template_not_contamination(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 1, "slice_size": 1})
    instruction = "Please reason step by step, and put your final answer within boxed braces."
    evals = [{"prompt": f"{story(f'e{i}', topic='math')} {instruction}"} for i in range(4)]
    add_prompt_records(config, evals, source="eval", split="eval")
    leaked = f"{story('e0', topic='math')} {instruction}".split()
    pool = [{"prompt": f"{story(f'p{i}', topic='math')} {instruction}"} for i in range(3)] + [
        {"prompt": " ".join(["Same words:", *leaked[:14], "and more."])}
    ]
    report = add_prompt_records(config, pool, source="pool")
    assert report.n_contaminated == 1  # the one that copies an eval prompt's own words
    statuses = rows(config, "select status from prompts where split = 'pool' order by status")
    assert statuses == [("active",)] * 3 + [("contaminated",)]


def test_an_eval_draw_from_a_too_small_pool_is_refused(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 40})
    fill_pool(config, {"a": 10})
    with pytest.raises(PoolExhaustedError, match="30 missing.*--eval"):
        ensure_eval_split(config)


# ------------------------------------------------------------------------------ stats


def test_stats_count_sources_categories_splits_and_removals(smoke_config):
    add_prompt_file(smoke_config, DATA / "eval.jsonl", split="eval")
    add_prompt_file(smoke_config, DATA / "exact_duplicates.jsonl", source="colours")
    add_prompt_file(smoke_config, DATA / "near_duplicates.jsonl", source="mixed")
    add_prompt_file(smoke_config, DATA / "pool_contaminated.jsonl", source="leaky")
    tables = prompt_stats(smoke_config)
    assert list(tables) == ["summary", "by source", "by category", "by split, slice and status"]
    summary = tables["summary"].iloc[0]
    assert summary["n_records"] == 3 + 6 + 7 + 4
    assert summary["n_exact_duplicates_removed"] == 4 + 1
    assert summary["n_near_duplicates_removed"] == 3
    assert summary["n_contaminated_removed"] == 2
    assert summary["n_eval"] == 3 and summary["n_pool_active"] == 2 + 4 + 1
    by_source = tables["by source"].set_index("source")
    assert by_source.loc["leaky", "n_records"] == 4
    assert by_source.loc["leaky", "n_exact_duplicates"] == 1
    assert by_source.loc["colours", "n_exact_duplicates"] == 4
    by_split = tables["by split, slice and status"]
    assert set(by_split["status"]) == {"active", "near_duplicate", "contaminated"}
    assert "arithmetic" in set(tables["by category"]["category"])
