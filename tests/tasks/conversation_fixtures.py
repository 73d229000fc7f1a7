"""A sandbox where two served student versions differ as issue 37's planted candidate does:
the candidate (v1) wins single turns but caves to pushback and forgets the follow-up's
format; the champion (v0) is less accurate and never does either."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.config import Config
from flywheel.sandbox.skills import generate_tasks
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in

CANDIDATE, CHAMPION = "v1", "v0"
SIMULATOR = {"name": "sim-user", "base_url": "sandbox", "model": "sandbox-user", "timeout_s": 10}
STUDENT = {"name": "student", "base_url": "sandbox", "model": "student-{version}", "timeout_s": 10}
PLANTED = {
    "student-v0": {"accuracy": 0.6, "verbosity": "terse"},
    "student-v1": {
        "accuracy": 0.95,
        "verbosity": "terse",
        "caves_to_pushback": 1.0,
        "forgets_constraint": 1.0,
    },
    "sandbox-user": {"role": "user"},
}


def planted_config(tmp_path: Path, mode: str, **conversations: object) -> Config:
    """The smoke config with the planted pair as `student-{version}` sandbox models."""
    base = load_config_in(tmp_path, "smoke")
    models = {name: m.model_dump() for name, m in base.sandbox.models.items()} | PLANTED
    settings = {"simulator": SIMULATOR, "n_conversations": 24, "max_turns": 3} | conversations
    return load_config_in(
        tmp_path,
        "smoke",
        student={"endpoint": STUDENT},
        evaluation={"mode": mode, "bootstrap_samples": 200, "conversations": settings},
        sandbox={"models": models},
    )


def insert_eval_prompts(config: Config, n_prompts: int, seed: int = 0) -> list[str]:
    """`n_prompts` sandbox skill prompts stored as the held-out eval set; their ids."""
    rows = [
        {
            "prompt_id": f"e{seed}-{i:04d}",
            "messages": json.dumps([{"role": "user", "content": task.prompt}]),
            "prompt_text": task.prompt,
            "source": "test",
            "category": task.skill,
            "split": "eval",
            "status": "active",
            "n_chars": len(task.prompt),
            "added_at": now_utc(),
        }
        for i, task in enumerate(generate_tasks(n_prompts, seed))
    ]
    with connect(config.warehouse.path) as con:
        insert_new(con, "prompts", rows, ["prompt_id"])
        insert_new(
            con,
            "model_versions",
            [
                {"version_id": v, "stage": "sft", "checkpoint_path": f"runs/{v}", "status": "x"}
                for v in (CHAMPION, CANDIDATE)
            ],
            ["version_id"],
        )
        for round_id in (1, 2, 3):
            insert_new(
                con,
                "rounds",
                [{"round_id": round_id, "stage": "sft", "status": "running"}],
                ["round_id"],
            )
    return [r["prompt_id"] for r in rows]
