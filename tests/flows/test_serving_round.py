"""Which weights answer in a round: after a promotion the next round's champion answers with
the new weights (recorded hash), and a whole smoke round with the champion and the candidate
served by `transformers serve` matches local generation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from flywheel.config import resolve_sandbox_endpoints
from flywheel.flows.round import start_round
from flywheel.llm.checkpoints import LocalGenerator, weights_sha256
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.answer import answer_prompts
from flywheel.tasks.promote import decide_round
from flywheel.warehouse.lifecycle import mark_round_done, register_base_model
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in
from tests.flows.test_round import write_smoke_config
from tests.tasks.answer_judge_fixtures import insert_prompts


def champion_weights(db_path: str, round_id: int, model_id: str) -> set[tuple]:
    query = (
        "select distinct backend, weights_sha256 from responses where round_id = ? and model_id = ?"
    )
    with connect(db_path, read_only=True) as con:
        return set(con.execute(query, [round_id, model_id]).fetchall())


def test_after_a_promotion_the_next_rounds_answers_carry_the_new_champions_weights(
    tmp_path: Path, smoke_student: Path
) -> None:
    config = load_config_in(tmp_path, student={"max_new_tokens": 4})
    candidate_path = shutil.copytree(smoke_student, tmp_path / "models" / "r1-sft")
    with (candidate_path / "model.safetensors").open("r+b") as weights:  # other weights
        weights.seek(-8, os.SEEK_END)
        weights.write(b"\x00" * 8)
    register_base_model(config.warehouse, str(smoke_student))
    prompt_ids = insert_prompts(config, 6)
    with start_sandbox(config.sandbox) as sandbox:
        live = resolve_sandbox_endpoints(config, sandbox.base_url)

        def answer_round(round_id: int, stage: str) -> str:
            champion = start_round(config, round_id, stage)
            answer_prompts(
                live,
                round_id,
                prompt_ids,
                champion_id=champion.version_id,
                champion_path=champion.checkpoint_path,
            )
            return champion.version_id

        assert answer_round(1, "sft") == "v0"
        with connect(config.warehouse.path) as con:
            candidate = {
                "version_id": "r1-sft",
                "parent_id": "v0",
                "round_id": 1,
                "stage": "sft",
                "checkpoint_path": str(candidate_path),
                "status": "candidate",
                "created_at": now_utc(),
            }
            insert_new(con, "model_versions", [candidate], ["version_id"])
        decide_round(config, 1, champion="v0", candidate="r1-sft", promote=True, reason="test")
        mark_round_done(config.warehouse, 1)
        assert answer_round(2, "dpo") == "r1-sft"
    old, new = weights_sha256(smoke_student), weights_sha256(candidate_path)
    assert old != new
    assert champion_weights(config.warehouse.path, 1, "v0") == {("local", old)}
    assert champion_weights(config.warehouse.path, 2, "r1-sft") == {("local", new)}
    with connect(config.warehouse.path, read_only=True) as con:
        refs = con.execute(
            "select distinct backend, weights_sha256 from responses where model_id like 'ref:%'"
        ).fetchall()
    assert refs == [("reference", None)]


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a leftover server)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


MAX_NEW_TOKENS = 48


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_smoke_round_served_by_transformers_serve_matches_local_generation(
    smoke_student: Path, tmp_path: Path
) -> None:
    """Champion and candidate are each served in turn (train answers, both eval sides); their
    greedy answers agree with local generation on at least 95% of prompts."""
    from prefect.testing.utilities import prefect_test_harness

    from flywheel.flows.flywheel_flow import flywheel

    config_path = write_smoke_config(tmp_path, smoke_student)
    data = yaml.safe_load(config_path.read_text())
    data["student"] |= {"backend": "server", "max_new_tokens": MAX_NEW_TOKENS}
    data["prompts"] |= {"slice_size": 16, "eval_size": 16}  # transformers serve: ~1 s an answer
    config_path.write_text(yaml.safe_dump(data))
    with prefect_test_harness(server_startup_timeout=120):
        flywheel(str(config_path), rounds=1)
    db_path = str(tmp_path / "flywheel.duckdb")
    assert processes_mentioning(str(tmp_path)) == [], "a server outlived its step"
    with connect(db_path, read_only=True) as con:
        versions = dict(
            con.execute("select version_id, checkpoint_path from model_versions").fetchall()
        )
        rows = con.execute(
            "select r.model_id, p.messages, r.response_text, r.backend, r.weights_sha256 "
            "from responses as r join prompts as p using (prompt_id) "
            "where r.model_id not like 'ref:%'"
        ).fetchall()
    served_models = {row[0] for row in rows}
    assert len(served_models) == 2, f"champion and candidate both answer: {served_models}"
    agreements: list[bool] = []
    differences: list[tuple] = []
    for model_id in sorted(served_models):
        path = versions[model_id]
        mine = [row for row in rows if row[0] == model_id]
        assert {(row[3], row[4]) for row in mine} == {("server", weights_sha256(path))}
        generator = LocalGenerator.load(path, device="cpu")

        conversations = [json.loads(row[1]) for row in mine]
        local = generator.generate(conversations, max_new_tokens=MAX_NEW_TOKENS)
        for row, answer in zip(mine, local, strict=True):
            agreements.append(row[2] == answer.text)
            if row[2] != answer.text:
                differences.append((model_id, row[2], answer.text))
    share = sum(agreements) / len(agreements)
    print(f"served vs local agreement: {share:.3f} over {len(agreements)} answers")
    for difference in differences[:10]:
        print("differs:", difference)
    assert share >= 0.95, differences[:5]
