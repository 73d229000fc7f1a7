"""benchmarks/bench_learning.py's `--stages`: another schedule through the same bench, every
seed's config checked before any is written, the sizes that shrink a real model's rounds, and
the per-round means of the JSON line."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from flywheel.config import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_learning.py"
sys.path.insert(0, str(SCRIPT.parent))
from bench_learning import (  # noqa: E402
    mean_accuracy_by_round,
    parse_stages,
    write_seed_configs,
)
from checker_pairs import sign_test_p  # noqa: E402


def demo_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())


def test_stages_are_read_in_round_order() -> None:
    assert parse_stages("sft, dpo,kto,rm+rl,online-dpo,orpo") == [
        "sft",
        "dpo",
        "kto",
        "rm+rl",
        "online-dpo",
        "orpo",
    ]


@pytest.mark.parametrize("text", ["sft,ppo", "", " , "])
def test_unknown_or_empty_stages_are_refused_naming_the_stages(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="rm\\+rl, kto, orpo, online-dpo"):
        parse_stages(text)


def test_stages_replace_the_schedule_in_every_seed_config(tmp_path: Path) -> None:
    base = demo_config()
    paths, stages_run = write_seed_configs(base, [0, 2], tmp_path, 1, ["sft", "kto", "dpo"])

    assert stages_run == ["sft", "kto", "dpo"]
    assert sorted(paths) == [0, 2]
    for seed, path in paths.items():
        written = yaml.safe_load(path.read_text())
        assert path == tmp_path / f"seed-{seed}" / "config.yaml"
        assert written["schedule"]["stages"] == ["sft", "kto", "dpo"]
        assert written["prompts"]["seed"] == written["training"]["seed"] == seed
        assert written["warehouse"]["path"] == str(tmp_path / f"seed-{seed}" / "flywheel.duckdb")
        assert written["training"]["dpo"] == base["training"]["dpo"]
    assert base["schedule"]["stages"] == ["sft", "rm+rl", "dpo"]  # the base is not changed


def test_pool_size_replaces_the_sandbox_pool_in_every_seed_config(tmp_path: Path) -> None:
    paths, _ = write_seed_configs(demo_config(), [0, 1], tmp_path, 1, None, pool_size=4000)
    for path in paths.values():
        assert yaml.safe_load(path.read_text())["prompts"]["sandbox_pool_size"] == 4000
    paths, _ = write_seed_configs(demo_config(), [0], tmp_path / "default", 1, None)
    assert yaml.safe_load(paths[0].read_text())["prompts"]["sandbox_pool_size"] == 3000


def test_sizes_shrink_every_round_and_cap_every_sections_steps(tmp_path: Path) -> None:
    base = yaml.safe_load((REPO_ROOT / "configs" / "real-small.yaml").read_text())
    sizes = {"eval_size": 100, "slice_size": 64, "max_steps": 10}
    paths, _ = write_seed_configs(base, [1], tmp_path, 1, None, sizes=sizes)

    written = yaml.safe_load(paths[1].read_text())
    assert (written["prompts"]["eval_size"], written["prompts"]["slice_size"]) == (100, 64)
    steps = {key: written["training"][key]["max_steps"] for key in ("sft", "dpo", "rm", "kto")}
    assert steps == {"sft": 10, "dpo": 10, "rm": 10, "kto": 10}
    # a section's own smaller cap is kept; the real model's GGUF keeps its name in the seed's dir
    paths, _ = write_seed_configs(base, [1], tmp_path / "wide", 1, None, sizes={"max_steps": 20})
    written = yaml.safe_load(paths[1].read_text())
    assert (written["training"]["rl"]["max_steps"], written["training"]["sft"]["max_steps"]) == (
        base["training"]["rl"]["max_steps"],
        20,
    )
    assert written["prompts"]["eval_size"] == base["prompts"]["eval_size"]
    gguf = Path(base["student"]["path"]).name
    assert written["student"]["path"] == str(tmp_path / "wide" / "seed-1" / gguf)


def test_without_stages_the_configs_schedule_runs(tmp_path: Path) -> None:
    _, stages_run = write_seed_configs(demo_config(), [0], tmp_path, 1, None)
    assert stages_run == ["sft", "rm+rl", "dpo"]


def test_a_config_problem_is_refused_before_any_config_is_written(tmp_path: Path) -> None:
    base = demo_config()
    base["training"]["orpo"] = {"beta": 0.0}
    with pytest.raises(ConfigError, match="orpo.beta"):
        write_seed_configs(base, [0, 1], tmp_path, 1, ["sft", "orpo"])
    assert list(tmp_path.iterdir()) == []


def test_mean_accuracy_by_round_averages_the_seeds_that_have_the_round() -> None:
    def seed(*after: float | None, last_status: str = "done") -> dict:
        rounds = [{"accuracy_after": value, "status": "done"} for value in after]
        rounds[-1]["status"] = last_status
        return {"rounds": rounds}

    by_seed = {"0": seed(0.2, 0.4, 0.5), "1": seed(0.4, None), "2": seed(0.3, 0.6)}
    assert mean_accuracy_by_round(by_seed) == [0.3, 0.5, 0.5]
    # a round still running has no decision yet; a failed one keeps its champion
    by_seed = {
        "0": seed(0.2, 0.4, last_status="running"),
        "1": seed(0.4, 0.4, last_status="failed"),
    }
    assert mean_accuracy_by_round(by_seed) == [0.3, 0.4]
    assert mean_accuracy_by_round({}) == []


def test_the_cli_refuses_an_unknown_stage_before_running(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--stages", "sft,ppo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "no training stage ppo" in run.stderr
    assert list(tmp_path.iterdir()) == []


def write_rounds(path: Path, rounds: list[tuple], answers: list[tuple] = ()) -> None:
    """A warehouse holding only what the bench reads: rounds, their evaluations (candidate
    `r<round>`, champion `v0`) and held-out answers (prompt, split, version, text)."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create table rounds (round_id int, stage varchar, status varchar, wall_s double)"
        )
        con.execute(
            "create table evaluations (round_id int, decision varchar, created_at timestamp, "
            "sandbox_accuracy_candidate double, sandbox_accuracy_champion double, "
            "candidate varchar, champion varchar)"
        )
        con.execute("create table prompts (prompt_id varchar, prompt_text varchar, split varchar)")
        con.execute(
            "create table responses (prompt_id varchar, model_id varchar, sample_idx int, "
            "response_text varchar)"
        )
        for round_id, stage, status, decision, candidate, champion in rounds:
            con.execute("insert into rounds values (?, ?, ?, 10.0)", [round_id, stage, status])
            if decision is not None:
                con.execute(
                    "insert into evaluations values (?, ?, now(), ?, ?, ?, 'v0')",
                    [round_id, decision, candidate, champion, f"r{round_id}"],
                )
        for prompt, split, version, text in answers:
            con.execute(
                "insert into prompts select ?, ?, ? where ? not in (select prompt_id from prompts)",
                [prompt, prompt, split, prompt],
            )
            con.execute("insert into responses values (?, ?, 0, ?)", [prompt, version, text])


# round 1's candidate alone is right on two checkable held-out prompts; the story cannot be
# checked and the pool prompt is not held out
ANSWERS = [
    ("What is 12 + 35?", "eval", "r1", "Answer: 47"),
    ("What is 12 + 35?", "eval", "v0", "Answer: 46"),
    ("What is 2 + 3?", "eval", "r1", "Answer: 5"),
    ("What is 2 + 3?", "eval", "v0", "Answer: 5"),
    ("What is 7 + 1?", "eval", "r1", "Answer: 8"),
    ("What is 7 + 1?", "eval", "v0", "Answer: 9"),
    ("Tell a story about a robot.", "eval", "r1", "Once."),
    ("Tell a story about a robot.", "eval", "v0", "Twice."),
    ("What is 1 + 1?", "pool", "r1", "Answer: 2"),
    ("What is 1 + 1?", "pool", "v0", "Answer: 3"),
]


def test_sign_test_p_is_the_one_sided_binomial_tail_of_the_discordant_prompts() -> None:
    assert sign_test_p(2, 0) == 0.25
    assert sign_test_p(0, 2) == 1.0
    assert sign_test_p(1, 1) == 0.75
    assert sign_test_p(29, 12) == pytest.approx(0.0058, abs=1e-4)
    assert sign_test_p(0, 0) is None


def test_report_only_reads_each_seeds_finished_rounds_and_runs_nothing(tmp_path: Path) -> None:
    write_seed_configs(demo_config(), [0, 1, 2], tmp_path, 1, ["dpo", "sft"], pool_size=4000)
    write_rounds(
        tmp_path / "seed-0" / "flywheel.duckdb",
        [(1, "dpo", "done", "promote", 0.5, 0.1), (2, "sft", "done", "keep", 0.45, 0.5)],
        ANSWERS,
    )
    write_rounds(
        tmp_path / "seed-1" / "flywheel.duckdb",
        [(1, "dpo", "done", "promote", 0.6, 0.1), (2, "sft", "running", None, None, None)],
    )
    # seed 2's run has not made its warehouse yet
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--report-only",
            "--seeds",
            "0,1,2",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["report_only"] is True
    assert summary["stages"] == ["dpo", "sft"] and summary["sandbox_pool_size"] == 4000
    assert [summary["by_seed"][s]["rounds_done"] for s in ("0", "1", "2")] == [2, 1, 0]
    assert summary["accuracy_mean_by_round"] == [0.55, 0.5]
    assert summary["gain_points_mean"] == 45.0
    round_1, round_2 = summary["by_seed"]["0"]["rounds"]
    assert (round_1["only_candidate_right"], round_1["only_champion_right"]) == (2, 0)
    assert round_1["sign_test_p"] == 0.25
    assert (round_2["only_candidate_right"], round_2["sign_test_p"]) == (0, None)
    assert not any(p.name == "run.log" for p in tmp_path.rglob("*"))
