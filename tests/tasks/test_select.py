"""Step 3a under a judge budget: the battles judged, stored once, and chosen by uncertainty."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import Config, SelectionConfig, resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks import select
from flywheel.tasks.answer import answer_prompts
from flywheel.tasks.battle_plan import train_battle_pairs
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.mine import mine_round
from flywheel.tasks.report import round_markdown
from flywheel.tasks.select import select_train_battles
from flywheel.warehouse.lifecycle import ModelVersion, record_round_start
from flywheel.warehouse.store import connect, now_utc
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import insert_prompts

CHAMPION = "v0"
ROUND_1 = {"round_id": 1, "stage": "sft", "slice_id": 1, "status": "done", "promoted": False}
SMALL_RM = {
    "learning_rate": 0.001,
    "num_train_epochs": 1,
    "batch_size": 8,
    "max_length": 256,  # the prompts state their answer format; this tokenizer spells most words
    "min_examples": 4,
}


def budget_config(tmp_path: Path, strategy: str, max_battles: int) -> Config:
    smoke = load_config_in(tmp_path, "smoke")
    training = smoke.training.model_dump() | {"rm": SMALL_RM}
    return load_config_in(
        tmp_path,
        "smoke",
        student={"max_new_tokens": 8, "batch_size": 4},
        judge={"selection": {"strategy": strategy, "max_battles": max_battles, "ensemble_size": 2}},
        training=training,
    )


def with_selection(config: Config, selection: SelectionConfig) -> Config:
    return config.model_copy(
        update={"judge": config.judge.model_copy(update={"selection": selection})}
    )


def selection_rows(config: Config, round_id: int) -> list[tuple]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(
            "select prompt_id, model_b, selected, uncertainty, strategy, selector, p_reference_wins "
            "from battle_selection where round_id = ? order by prompt_id, model_b",
            [round_id],
        ).fetchall()


def answered_pairs(
    config: Config, prompt_ids: list[str], student: Path
) -> list[tuple[str, str, str]]:
    """Round 1's answers by the local champion and the references; its battle pairs."""
    answer_prompts(
        config,
        1,
        prompt_ids,
        champion_id=CHAMPION,
        champion_path=str(student),
    )
    return train_battle_pairs(config, 1, prompt_ids, CHAMPION)


def judge_call_count(config: Config) -> int:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute("select count(*) from llm_calls where endpoint = 'judge'").fetchone()[0]


def test_a_budget_judges_only_the_chosen_battles_and_a_rerun_keeps_the_choice(
    tmp_path: Path, tiny_student: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = budget_config(tmp_path, "uncertain", max_battles=10)
    champion = ModelVersion(CHAMPION, str(tiny_student), "champion")
    prompt_ids = insert_prompts(config, 12)
    with start_sandbox(config.sandbox) as server:
        config = resolve_sandbox_endpoints(config, server.base_url)
        pairs = answered_pairs(config, prompt_ids, tiny_student)
        first = select_train_battles(config, 1, pairs, champion)
        judged = judge_battles(config, 1, first.pairs, "train")
        n_judge_calls = judge_call_count(config)

        monkeypatch.setattr(select, "_ensemble_scores", lambda *a: pytest.fail("chose again"))
        again = select_train_battles(config, 1, pairs, champion)
        judge_battles(config, 1, again.pairs, "train")

    assert len(pairs) == 24 and len(first.pairs) == 10
    assert "at random: 0 earlier preference pairs" in first.selector  # round 1: nothing to fit
    assert sum(judged.outcomes.values()) == 10 and n_judge_calls == 20  # both orders
    assert again.reused and again.pairs == first.pairs
    assert judge_call_count(config) == n_judge_calls
    rows = selection_rows(config, 1)
    assert len(rows) == 24 and sum(r[2] for r in rows) == 10
    assert {r[4] for r in rows} == {"random"} and all(r[3] is None for r in rows)
    record_round_start(
        config.warehouse,
        ROUND_1
        | {
            "champion_before": CHAMPION,
            "config_hash": config.fingerprint(),
            "started_at": now_utc(),
        },
    )
    with connect(config.warehouse.path, read_only=True) as con:
        summary = con.execute("select n_battles, n_battles_unselected from v_round_summary")
        assert summary.fetchall() == [(10, 14)]
    assert "from 10 battles (and 14 left unjudged by the judge budget" in round_markdown(config, 1)


def test_the_ensemble_strategies_judge_what_the_fitted_models_doubt_most_or_expect_lost(
    tmp_path: Path, tiny_student: Path
) -> None:
    config = budget_config(tmp_path, "uncertain", max_battles=6)
    champion = ModelVersion(CHAMPION, str(tiny_student), "champion")
    prompt_ids = insert_prompts(config, 12)
    everything = with_selection(config, SelectionConfig())
    likely_losses = with_selection(
        config, SelectionConfig(strategy="likely_losses", max_battles=6, ensemble_size=2)
    )
    with start_sandbox(config.sandbox) as server:
        config = resolve_sandbox_endpoints(config, server.base_url)
        pairs = answered_pairs(config, prompt_ids, tiny_student)
        round_1 = select_train_battles(everything, 1, pairs, champion)
        judge_battles(config, 1, round_1.pairs, "train")
        mine_round(config, 1, "sft")
        round_2 = select_train_battles(config, 2, pairs, champion)
        round_3 = select_train_battles(likely_losses, 3, pairs, champion)

    assert len(round_1.pairs) == 24 and selection_rows(config, 1) == []  # all: nothing stored
    assert len(round_2.pairs) == 6
    assert "the most uncertain to 2 reward models fit from v0 on " in round_2.selector
    rows = selection_rows(config, 2)
    assert len(rows) == 24 and {r[4] for r in rows} == {"uncertain"}
    chosen = [r[3] for r in rows if r[2]]
    left = [r[3] for r in rows if not r[2]]
    assert len(chosen) == 6 and min(chosen) >= max(left)
    assert not (Path(config.training.output_dir) / "selector-r2").exists()  # fit, used, removed

    assert "the likeliest losses by 2 reward models fit from v0 on " in round_3.selector
    rows = selection_rows(config, 3)
    assert {r[4] for r in rows} == {"likely_losses"}
    chosen = [r[6] for r in rows if r[2]]
    left = [r[6] for r in rows if not r[2]]
    assert len(chosen) == 6 and min(chosen) >= max(left)
