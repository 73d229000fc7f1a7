"""The online-dpo stage through the train step, end to end on the sandbox: the round's battles
mine DPO pairs, reward models are fit from the champion on them, the local champion samples,
best-vs-worst pairs are stored and DPO trains a candidate on them; a rerun trains nothing again.
Without pairs to fit reward models on, the stage is skipped and says how to fix it."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from flywheel.config import Config, resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.answer import answer_prompts
from flywheel.tasks.battle_plan import train_battle_pairs
from flywheel.tasks.judge import judge_battles
from flywheel.tasks.mine import mine_round
from flywheel.tasks.train import run_training_stage
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import insert_prompts

CHAMPION = "v0"
SMALL = {"learning_rate": 1e-3, "max_steps": 3, "batch_size": 4, "max_length": 192}


def online_round_config(tmp_path: Path) -> Config:
    smoke = load_config_in(tmp_path, "smoke")
    training = smoke.training.model_dump()
    training["rm"] = {**SMALL, "min_examples": 4, "ensemble_size": 2}
    training["online_dpo"] = {**SMALL, "min_examples": 2, "n_samples": 3, "temperature": 1.5}
    return load_config_in(
        tmp_path,
        "smoke",
        student={"max_new_tokens": 8, "batch_size": 4},
        schedule={"stages": ["online-dpo"]},
        training=training,
    )


def counts(config: Config) -> tuple[int, int, int]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(
            "select (select count(*) from responses), (select count(*) from preference_pairs "
            "where kind = 'online-dpo'), (select count(*) from training_runs)"
        ).fetchone()


def test_an_online_dpo_round_samples_scores_pairs_and_trains_a_candidate_once(
    tmp_path: Path, tiny_student: Path
) -> None:
    config = online_round_config(tmp_path)
    champion = ModelVersion(CHAMPION, str(tiny_student), "champion")
    prompt_ids = insert_prompts(config, 12)
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        answer_prompts(live, 1, prompt_ids, champion_id=CHAMPION, champion_path=str(tiny_student))
        judge_battles(live, 1, train_battle_pairs(live, 1, prompt_ids, CHAMPION), "train")
        mined = mine_round(live, 1, "online-dpo")
    assert set(mined.n_total) == {"sft", "dpo"} and mined.n_total["dpo"] >= 4

    result = run_training_stage(config, 1, "online-dpo", champion)

    assert result.status == "done", result.reason
    assert result.candidate == "r1-online-dpo"
    n_responses, n_pairs, n_runs = counts(config)
    assert n_responses == 12 * 3 + 3 * 12  # the round's answers (champion, 2 refs) + 3 samples
    assert n_pairs == result.n_examples >= 2 and n_runs == 1
    with connect(config.warehouse.path, read_only=True) as con:
        stage, hyperparams, scored_by = con.execute(
            "select t.stage, t.hyperparams, p.scored_by from training_runs as t, "
            "preference_pairs as p where p.kind = 'online-dpo' limit 1"
        ).fetchone()
    assert stage == "online-dpo" and '"stage": "online-dpo"' in hyperparams
    assert scored_by.startswith("2 reward models fit from v0 on ")
    assert not (Path(config.training.output_dir) / "online-rm-r1").exists()  # used, removed
    before = load_file(str(tiny_student / "model.safetensors"))
    after = load_file(str(Path(result.candidate_path) / "model.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)

    again = run_training_stage(config, 1, "online-dpo", champion)
    assert again.status == "done" and again.candidate == result.candidate
    assert counts(config) == (n_responses, n_pairs, n_runs)


def test_without_pairs_to_fit_reward_models_the_stage_is_skipped_before_sampling(
    tmp_path: Path, tiny_student: Path
) -> None:
    config = online_round_config(tmp_path)
    insert_prompts(config, 4)
    result = run_training_stage(
        config, 1, "online-dpo", ModelVersion(CHAMPION, str(tiny_student), "champion")
    )

    assert result.status == "skipped" and result.candidate is None
    assert (
        "0 DPO pairs mined up to this round, fewer than training.rm.min_examples" in result.reason
    )
    assert "training.online_dpo.reward_model" in result.reason
    assert counts(config) == (0, 0, 1)  # nothing sampled; the skip recorded
