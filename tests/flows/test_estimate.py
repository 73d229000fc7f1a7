"""The first line's time estimate: measured rounds of this warehouse scaled to the planned ones,
the student's last build, Prefect's last start; "unknown" where nothing was measured."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flywheel.config import Config
from flywheel.flows.progress import run_plan
from flywheel.flows.temporary_server import record_run_span
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in

STARTED = datetime(2026, 12, 5, 10, 0, 0)
EARLIER = datetime(2026, 12, 5, 9, 0, 0)


@pytest.fixture
def prefect_home(tmp_path: Path):
    """A Prefect home of the test's own whose last run took 362 s (10:00:00 to 10:06:02)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = tmp_path / "prefect-home"
    home.mkdir()
    record_run_span(home, STARTED, STARTED + timedelta(seconds=362))
    with temporary_settings(updates={PREFECT_HOME: str(home)}, restore_defaults={PREFECT_API_URL}):
        yield home


def with_student(tmp_path: Path, **sections: dict) -> Config:
    config = load_config_in(tmp_path, "smoke", **sections)
    student = Path(config.student.path)
    student.mkdir()
    for name in ("config.json", "model.safetensors"):
        (student / name).write_text("{}")
    return config


def store_round(
    db_path: Path,
    round_id: int,
    stage: str,
    times: tuple[float, float, float],
    n_prompts: int = 40,
    finished_s: float = 300.0,
) -> None:
    """A finished round: (wall, training, general check) seconds, `n_prompts` in its slice,
    finished `finished_s` after 10:00."""
    wall_s, train_s, general_s = times
    finished_at = STARTED + timedelta(seconds=finished_s)
    with connect(db_path) as con:
        con.execute(
            "insert into rounds (round_id, stage, slice_id, status, champion_before, started_at, "
            "finished_at, wall_s) values (?, ?, ?, 'done', 'v0', ?, ?, ?)",
            [round_id, stage, round_id, STARTED, finished_at, wall_s],
        )
        for i in range(n_prompts):
            con.execute(
                "insert into prompts (prompt_id, messages, prompt_text, source, split, slice_id,"
                " status, n_chars, added_at) values (?, '[]', 'p', 's', 'pool', ?, 'active', 1, ?)",
                [f"r{round_id}-{i}", round_id, STARTED],
            )
        con.execute(
            "insert into training_runs (run_id, round_id, stage, base_version, status, "
            "n_examples, wall_s, created_at) values (?, ?, ?, 'v0', 'done', 10, ?, ?)",
            [f"t{round_id}", round_id, stage, train_s, STARTED],
        )
        con.execute(
            "insert into general_checks (round_id, version_id, n_items, set_sha256, wall_s, "
            "measured_at) values (?, ?, 5, 'h', ?, ?), (?, 'v0', 5, 'h', 99.0, ?)",
            [round_id, f"r{round_id}", general_s, STARTED, round_id, EARLIER],
        )


def test_without_finished_rounds_the_round_time_is_unknown(tmp_path: Path, prefect_home) -> None:
    config = with_student(tmp_path)
    line = run_plan(config, "c.yaml", [1, 2, 3], retry_failed=False)
    assert line.endswith(
        f"round-0 student at {config.student.path}; round time unknown until the first round"
    ), line


def test_earlier_rounds_of_each_stage_kind_time_the_planned_ones(
    tmp_path: Path, prefect_home
) -> None:
    config = with_student(tmp_path)
    db_path = Path(config.warehouse.path)
    store_round(db_path, 1, "sft", (100.0, 20.0, 10.0))
    store_round(db_path, 2, "dpo", (50.0, 10.0, 0.0))
    store_round(db_path, 3, "rm+rl", (200.0, 100.0, 0.0))
    line = run_plan(config, "c.yaml", [4, 5, 6], retry_failed=False)
    # accumulated mining: each second round of its kind trains on twice the examples
    # sft 70 + 2 * 20 + 10, dpo 40 + 2 * 10, rm+rl 100 + 2 * 100; outside the rounds in the
    # last run 362 - 350: 492 s
    assert line.endswith("; about 8 min 12 s in all (from rounds 1, 2, 3 of this warehouse)")


def test_without_a_run_of_this_warehouse_only_the_rounds_are_timed(
    tmp_path: Path, prefect_home
) -> None:
    config = with_student(tmp_path)
    store_round(Path(config.warehouse.path), 1, "sft", (100.0, 20.0, 10.0), finished_s=-60.0)
    line = run_plan(config, "c.yaml", [4], retry_failed=False)  # the last run was elsewhere
    assert line.endswith("; about 2 min 00 s for the rounds (from round 1 of this warehouse)")


def test_a_round_with_fewer_prompts_scales_all_but_the_general_check(
    tmp_path: Path, prefect_home
) -> None:
    config = with_student(
        tmp_path, prompts={"slice_size": 20}, training={"mining": {"accumulate": False}}
    )
    store_round(Path(config.warehouse.path), 1, "sft", (100.0, 20.0, 10.0))
    line = run_plan(config, "c.yaml", [4], retry_failed=False)
    # (100 - 10) * 20/40 + 10; outside the rounds in the last run: 362 - 100
    assert line.endswith("; about 5 min 17 s in all (from round 1 of this warehouse)")


def test_a_later_round_leaves_out_the_champions_first_general_check_and_eval_answers(
    tmp_path: Path, prefect_home
) -> None:
    """Round 1 checked both versions on the general set and generated the champion's eval
    answers too; round 4 checks its candidate alone and reuses the champion's answers."""
    config = with_student(tmp_path, training={"mining": {"accumulate": False}})
    db_path = Path(config.warehouse.path)
    store_round(db_path, 1, "sft", (112.0, 20.0, 40.0))
    with connect(db_path) as con:
        con.execute(
            "update general_checks set wall_s = 40.0, measured_at = ? where version_id = 'v0'",
            [STARTED],
        )  # the champion measured in this round too: 80 s of general check in all
        for i in range(40):
            con.execute(
                "insert into prompts (prompt_id, messages, prompt_text, source, split, status, "
                "n_chars, added_at) values (?, '[]', 'e', 's', 'eval', 'active', 1, ?)",
                [f"e{i}", STARTED],
            )
            for model_id, prompt_id in (("v0", f"r1-{i}"), ("v0", f"e{i}"), ("r1", f"e{i}")):
                con.execute(
                    "insert into responses (response_id, prompt_id, model_id, sample_idx, "
                    "round_id, response_text, created_at) values (?, ?, ?, 0, 1, 'a', ?)",
                    [f"{model_id}-{prompt_id}", prompt_id, model_id, STARTED],
                )
    line = run_plan(config, "c.yaml", [4], retry_failed=False)
    # rest (112 - 20 - 80) * 2/3 (80 of the 120 answers), training 20, one version's check 40;
    # outside the rounds in the last run 362 - 112: 318 s
    assert line.endswith("; about 5 min 18 s in all (from round 1 of this warehouse)"), line


def test_a_stage_kind_never_run_here_is_named_unknown(tmp_path: Path, prefect_home) -> None:
    config = with_student(tmp_path)
    store_round(Path(config.warehouse.path), 1, "sft", (100.0, 20.0, 10.0))
    line = run_plan(config, "c.yaml", [2, 3, 4], retry_failed=False)
    assert line.endswith(
        "; about 2 min 00 s for the sft rounds (from round 1 of this warehouse), "
        "dpo, rm+rl unknown until its first round"
    ), line


def test_the_student_build_is_timed_by_an_earlier_build_of_its_recipe(
    tmp_path: Path, student_cache_dir: Path, prefect_home
) -> None:
    from flywheel.sandbox.student import StudentRecipe, student_recipe_fields

    config = load_config_in(tmp_path)
    fields = student_recipe_fields(config, StudentRecipe())
    entry = student_cache_dir / "students" / "older-code-key"
    entry.mkdir(parents=True)
    manifest = {
        "built_from": {"recipe": json.loads(json.dumps(fields, default=str))},
        "build_wall_s": 400.0,
        "created_at": "2026-12-05T09:00:00Z",
    }
    (entry / "flywheel-student.json").write_text(json.dumps(manifest))
    line = run_plan(config, "c.yaml", [1], retry_failed=False)
    assert "the round-0 student is built first (about 6 min 40 s)" in line

    manifest["built_from"]["recipe"]["seed"] = -1  # another recipe says nothing of this one
    (entry / "flywheel-student.json").write_text(json.dumps(manifest))
    line = run_plan(config, "c.yaml", [1], retry_failed=False)
    assert "the round-0 student is built first (time unknown: never built here)" in line
