"""The online-dpo stage's pairs (tasks/online_pairs.py, tasks/online_scores.py): best against
worst by reward, deterministic, stored once; the stage's config and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from flywheel.config import Config, ConfigError
from flywheel.errors import InputError
from flywheel.llm.stages.online_dpo import (
    OnlineDpoConfig,
    online_dpo_problems,
    reward_members,
    reward_model_problem,
)
from flywheel.llm.stages.registry import stage_named
from flywheel.tasks import online_pairs
from flywheel.tasks.online_pairs import ScoredSample, best_worst_pairs, make_online_pairs
from flywheel.tasks.online_scores import SampleRewards, combine_rewards
from flywheel.tasks.responses import response_id_for
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import insert_prompts, served_champion_config

CHAMPION = "v0"
SMALL = {"learning_rate": 1e-3, "max_steps": 3, "batch_size": 4, "max_length": 128}


def sample(prompt_id: str, idx: int, reward: float, text: str | None = None) -> ScoredSample:
    return ScoredSample(prompt_id, idx, f"r-{prompt_id}-{idx}", text or f"answer {idx}", reward)


def test_each_prompt_pairs_its_best_sample_against_its_worst() -> None:
    samples = [
        sample("p2", 1, 0.5), sample("p2", 2, -1.0), sample("p2", 3, 2.0), sample("p2", 4, 0.0),
        sample("p1", 1, 1.0), sample("p1", 2, 3.0),
    ]  # fmt: skip
    pairs, n_skipped = best_worst_pairs(samples, min_gap=0.0)
    assert n_skipped == 0
    assert [(p.prompt_id, p.chosen.sample_idx, p.rejected.sample_idx) for p in pairs] == [
        ("p1", 2, 1),
        ("p2", 3, 2),
    ]
    assert pairs[1].score_gap == 3.0 and pairs[1].n_scored == 4


def test_ties_equal_texts_and_gaps_under_the_minimum_give_no_pair() -> None:
    samples = [
        sample("tie", 1, 1.0), sample("tie", 2, 1.0),
        sample("same", 1, 1.0, "4"), sample("same", 2, 1.0 + 1e-9, "4"),
        sample("close", 1, 0.0), sample("close", 2, 0.4),
        sample("alone", 1, 5.0),
        sample("wide", 1, 0.0), sample("wide", 2, 0.5),
    ]  # fmt: skip
    pairs, n_skipped = best_worst_pairs(samples, min_gap=0.5)
    assert [p.prompt_id for p in pairs] == ["wide"] and n_skipped == 4


def test_equal_rewards_break_by_sample_index_the_same_way_every_time() -> None:
    samples = [sample("p", 1, 2.0), sample("p", 2, 2.0), sample("p", 3, 0.0), sample("p", 4, 0.0)]
    first, _ = best_worst_pairs(samples, 0.0)
    again, _ = best_worst_pairs(list(reversed(samples)), 0.0)
    assert (first[0].chosen.sample_idx, first[0].rejected.sample_idx) == (1, 4)
    assert first == again


def test_rewards_are_the_members_standardised_mean_mixed_with_the_checker() -> None:
    member_scores = [[1.0, 2.0, 3.0], [10.0, 30.0, 20.0]]
    rewards = combine_rewards(member_scores, [None, None, None], 0.0)
    standardised = [(np.array(s) - np.mean(s)) / np.std(s) for s in member_scores]
    assert np.allclose(rewards, np.mean(standardised, axis=0))
    mixed = combine_rewards(member_scores, [1.0, None, -1.0], 0.5)
    assert np.allclose(mixed, [0.5 * rewards[0] + 0.5, rewards[1], 0.5 * rewards[2] - 0.5])
    penalised = combine_rewards(member_scores, [None, None, None], 0.0, disagreement_penalty=2.0)
    assert np.allclose(penalised, rewards - 2.0 * np.std(standardised, axis=0))


def test_the_stage_registers_with_its_config_and_refuses_bad_settings() -> None:
    stage = stage_named("online-dpo")
    assert stage.sections == {"online_dpo": OnlineDpoConfig} and stage.data.name == "online-dpo"
    assert stage.data.view == "v_online_dpo_pairs" and not stage.trains_on_prompts
    cfg = stage.absent_section("online_dpo")
    assert (cfg.n_samples, cfg.temperature, cfg.reward_model, cfg.learning_rate) == (
        4,
        1.0,
        None,
        5e-5,
    )
    with pytest.raises(ValidationError, match="n_samples"):
        OnlineDpoConfig(n_samples=1)
    with pytest.raises(ValidationError, match="verifiable_reward_weight"):
        OnlineDpoConfig(verifiable_reward_weight=1.5)


def test_a_disagreement_penalty_on_one_fitted_reward_model_is_refused(tmp_path: Path) -> None:
    smoke = load_config_in(tmp_path, "smoke")
    training = smoke.training.model_dump()
    training["online_dpo"] = {"disagreement_penalty": 0.5}
    with pytest.raises(ConfigError, match="one reward model never disagrees with itself"):
        load_config_in(tmp_path, "smoke", training=training)
    training["rm"] = {**training["rm"], "ensemble_size": 3}
    assert (
        load_config_in(
            tmp_path, "smoke", training=training
        ).training.online_dpo.disagreement_penalty
        == 0.5
    )


def test_a_config_scheduling_online_dpo_is_refused_where_it_cannot_make_pairs(
    tmp_path: Path,
) -> None:
    scheduled = {"stages": ["online-dpo"]}
    local = load_config_in(tmp_path, "smoke", schedule=scheduled)
    assert local.schedule.stages == ["online-dpo"] and online_dpo_problems(local) == []
    sandbox_student = served_champion_config(tmp_path, schedule=scheduled)
    (problem,) = online_dpo_problems(sandbox_student)
    assert "reply depends on the messages only" in problem and "student.backend local" in problem
    not_scheduled = sandbox_student.model_copy(
        update={"schedule": sandbox_student.schedule.model_copy(update={"stages": ["dpo"]})}
    )
    assert online_dpo_problems(not_scheduled) == []
    with pytest.raises(InputError, match="reply depends on the messages only"):
        make_online_pairs(sandbox_student, 1, ModelVersion(CHAMPION, "", "champion"))


def test_a_reward_model_path_must_hold_a_one_label_classifier(
    tmp_path: Path, reward_checkpoint: Path, tiny_student: Path
) -> None:
    assert reward_model_problem(None) is None
    assert reward_model_problem(str(reward_checkpoint)) is None
    assert reward_members(reward_checkpoint) == [reward_checkpoint]
    problem = reward_model_problem(str(tiny_student))  # a causal LM, not a reward model
    assert "is not a reward model" in problem and "<candidate>-rm" in problem
    assert "is not a reward model" in reward_model_problem(str(tmp_path / "missing"))
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    for member in range(2):
        (ensemble / f"member-{member}").symlink_to(reward_checkpoint, target_is_directory=True)
    assert reward_members(ensemble) == [ensemble / "member-0", ensemble / "member-1"]


@pytest.fixture(scope="module")
def reward_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_student: Path) -> Path:
    """A one-label sequence classifier on the tiny student (its head seeded, untrained)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_student, num_labels=1)
    model.config.pad_token_id = model.config.pad_token_id or model.config.eos_token_id
    out = tmp_path_factory.mktemp("rm") / "rm"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_student).save_pretrained(out)
    return out


def online_config(tmp_path: Path, **online: object) -> Config:
    smoke = load_config_in(tmp_path, "smoke")
    training = smoke.training.model_dump()
    training["online_dpo"] = {**SMALL, "n_samples": 3, "temperature": 1.5, **online}
    return load_config_in(
        tmp_path,
        "smoke",
        student={"max_new_tokens": 8, "batch_size": 4},
        schedule={"stages": ["online-dpo"]},
        training=training,
    )


def stored_pairs(config: Config) -> list[tuple]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(
            "select prompt_id, chosen_response_id, rejected_response_id, chosen_score, "
            "rejected_score, score_gap, n_scored, battle_id, origin, chosen_model, scored_by "
            "from preference_pairs where kind = 'online-dpo' order by prompt_id"
        ).fetchall()


def test_samples_go_through_the_answer_path_and_pairs_are_best_vs_worst_once(
    tmp_path: Path, tiny_student: Path, reward_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = online_config(tmp_path, reward_model=str(reward_checkpoint))
    champion = ModelVersion(CHAMPION, str(tiny_student), "champion")
    prompt_ids = insert_prompts(config, 6)
    progress: list[tuple[int, int]] = []
    scored: list[list[str]] = []

    def by_length(config, round_id, champion, prompts, completions) -> SampleRewards:
        scored.append(list(completions))  # a stand-in reward: the longer answer is better
        return SampleRewards([float(len(c)) for c in completions], "answer length", 0)

    monkeypatch.setattr(online_pairs, "score_samples", by_length)
    report = make_online_pairs(config, 1, champion, lambda d, t: progress.append((d, t)))

    with connect(config.warehouse.path, read_only=True) as con:
        samples = con.execute(
            "select prompt_id, sample_idx, response_id, response_text, backend from responses "
            "order by prompt_id, sample_idx"
        ).fetchall()
    assert len(samples) == 18 and {s[1] for s in samples} == {1, 2, 3}  # no sample 0
    assert all(s[2] == response_id_for(s[0], CHAMPION, s[1]) and s[4] == "local" for s in samples)
    assert progress[-1] == (18, 18) and report.n_generated == 18 and len(scored) == 1
    texts = {s[2]: s[3] for s in samples}
    pairs = stored_pairs(config)
    assert report.n_pairs == len(pairs) and report.n_pairs + report.n_skipped == 6
    for prompt_id, chosen, rejected, chosen_score, rejected_score, gap, n, battle, origin, model, by in pairs:  # fmt: skip
        lengths = [len(s[3]) for s in samples if s[0] == prompt_id]
        assert (chosen_score, rejected_score) == (max(lengths), min(lengths)) and gap > 0
        assert (len(texts[chosen]), len(texts[rejected])) == (max(lengths), min(lengths))
        assert (n, battle, origin, model, by) == (3, None, "online", CHAMPION, "answer length")
    assert set(prompt_ids) >= {p[0] for p in pairs}
    with connect(config.warehouse.path, read_only=True) as con:
        assert contract_violations(con) == []
        view = con.execute("select chosen_sample_idx, prompt from v_online_dpo_pairs").fetchall()
    assert len(view) == len(pairs) and all(1 <= idx <= 3 and prompt for idx, prompt in view)

    monkeypatch.setattr(online_pairs, "score_samples", lambda *a: pytest.fail("scored again"))
    monkeypatch.setattr(online_pairs, "answer_as_student", lambda *a, **k: pytest.fail("sampled"))
    again = make_online_pairs(config, 1, champion)
    assert again.reused and again.n_pairs == len(pairs) and stored_pairs(config) == pairs


def test_samples_are_seeded_and_ranked_by_the_reward_model_the_same_way_twice(
    tmp_path: Path, tiny_student: Path, reward_checkpoint: Path
) -> None:
    champion = ModelVersion(CHAMPION, str(tiny_student), "champion")
    results = []
    for run in ("a", "b"):
        config = online_config(tmp_path / run, reward_model=str(reward_checkpoint))
        insert_prompts(config, 6)
        report = make_online_pairs(config, 1, champion)
        assert report.scored_by == f"reward model {reward_checkpoint}"
        results.append(stored_pairs(config))
    assert results[0] == results[1] and len(results[0]) > 0
    assert all(row[3] - row[4] == pytest.approx(row[5]) for row in results[0])
