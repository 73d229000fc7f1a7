"""The online-dpo samples through a served student (`student.backend: server`, transformers
serve): the same answer path as the round's answers, each sample a seeded request at the stage's
temperature, separated in the call cache by its sample index; a rerun sends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.tasks import online_pairs
from flywheel.tasks.online_pairs import make_online_pairs
from flywheel.tasks.online_scores import SampleRewards
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import insert_prompts


@pytest.mark.slow
def test_served_samples_are_seeded_requests_at_the_stage_temperature_sent_once(
    tmp_path: Path, tiny_student: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smoke = load_config_in(tmp_path, "smoke")
    training = smoke.training.model_dump()
    training["online_dpo"] = {"n_samples": 2, "temperature": 1.3, "reward_model": None}
    config = load_config_in(
        tmp_path,
        "smoke",
        student={"backend": "server", "max_new_tokens": 8, "seed": 5},
        schedule={"stages": ["online-dpo"]},
        training=training,
    )
    prompt_ids = insert_prompts(config, 3)
    monkeypatch.setattr(online_pairs, "require_reward_models", lambda config, round_id: None)
    monkeypatch.setattr(
        online_pairs,
        "score_samples",
        lambda config, round_id, champion, prompts, texts: SampleRewards(
            [float(len(t)) for t in texts], "answer length", 0
        ),
    )
    champion = ModelVersion("v0", str(tiny_student), "champion")

    report = make_online_pairs(config, 1, champion)

    with connect(config.warehouse.path, read_only=True) as con:
        calls = con.execute("select request_json from llm_calls").fetchall()
        samples = con.execute(
            "select sample_idx, backend, call_id is not null from responses order by sample_idx"
        ).fetchall()
    requests = [json.loads(request) for (request,) in calls]
    assert report.n_samples == 6 and report.n_generated == 6
    assert [s[0] for s in samples] == [1, 1, 1, 2, 2, 2]
    assert all(backend == "server" and has_call for _, backend, has_call in samples)
    assert sorted(r["seed"] for r in requests) == [6, 6, 6, 7, 7, 7]  # student.seed + sample
    assert {r["temperature"] for r in requests} == {1.3}
    assert (
        sorted(r["cache_tag"].split(";")[-1] for r in requests)
        == ["sample=1"] * 3 + ["sample=2"] * 3
    )

    # sampling again finds every sample stored: no server is started, no request sent
    assert online_pairs.sample_answers(config, 1, prompt_ids, champion) == 0
    with connect(config.warehouse.path, read_only=True) as con:
        assert con.execute("select count(*) from llm_calls").fetchone()[0] == len(calls)
