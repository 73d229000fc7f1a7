"""Shared by the answer and judge step tests (and the round, lake and serving tests that
reuse them): the served-champion smoke config, sandbox prompts, running steps 2-3 against a
sandbox, counting rows, and the tiny local student."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.config import Config, RetryConfig, resolve_sandbox_endpoints
from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.sandbox.skills import generate_tasks
from flywheel.tasks.answer import answer_prompts
from flywheel.tasks.battle_plan import train_battle_pairs
from flywheel.tasks.judge import judge_battles
from flywheel.warehouse.store import connect, connect_warehouse, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in

ROUND_ID = 1
CHAMPION_ID = "v0"
FAST_RETRY = RetryConfig(base_delay_s=0.02, max_delay_s=0.2, max_retry_after_s=5.0)
TABLES = ("llm_calls", "responses", "judgments", "battles")
KEYS = {
    "llm_calls": "call_id",
    "responses": "response_id",
    "judgments": "judgment_id",
    "battles": "battle_id",
}
OUTCOMES = {"win", "loss", "tie", "inconsistent", "unparsed", "error"}
STUDENT_MODEL = {"role": "reference", "accuracy": 0.4, "verbosity": "terse", "latency_ms": 5}


def served_champion_config(
    tmp_path: Path, fault_rates: dict | None = None, **updates: dict
) -> Config:
    """The smoke config with the champion served by the sandbox (model `sandbox-student`)."""
    base = load_config_in(tmp_path, "smoke")
    models = {name: m.model_dump() for name, m in base.sandbox.models.items()}
    models["sandbox-student"] = dict(STUDENT_MODEL)
    for model in models.values():
        model.update(fault_rates or {})
    student = {"endpoint": {"name": "student", "base_url": "sandbox", "model": "sandbox-student"}}
    return load_config_in(
        tmp_path,
        "smoke",
        student=student | updates.pop("student", {}),
        sandbox={"models": models} | updates.pop("sandbox", {}),
        **updates,
    )


def insert_prompts(config: Config, n_prompts: int, seed: int = 0) -> list[str]:
    """`n_prompts` sandbox skill prompts stored as pool prompts of slice 1; their ids."""
    rows = []
    for i, task in enumerate(generate_tasks(n_prompts, seed)):
        messages = [{"role": "user", "content": task.prompt}]
        rows.append(
            {
                "prompt_id": f"p{seed}-{i:04d}",
                "messages": json.dumps(messages),
                "prompt_text": task.prompt,
                "source": "test",
                "category": task.skill,
                "split": "pool",
                "slice_id": 1,
                "status": "active",
                "n_chars": len(task.prompt),
                "added_at": now_utc(),
            }
        )
    with connect_warehouse(config.warehouse) as con:  # the file or a DuckLake
        insert_new(con, "prompts", rows, ["prompt_id"])
    return [r["prompt_id"] for r in rows]


def on_sandbox(config: Config, live_url: str) -> Config:
    """`config` as a run resolves it once the sandbox at `live_url` runs."""
    return resolve_sandbox_endpoints(config, live_url)


def fast_retries(config: Config) -> Config:
    """`config` with every endpoint (references, judge and panel, student.endpoint) waiting
    FAST_RETRY's short backoff between retries."""

    def fast(endpoint):
        return endpoint.model_copy(update={"retry": FAST_RETRY})

    panel = [fast(member) for member in config.judge.panel]
    student = config.student
    if student.endpoint is not None:
        student = student.model_copy(update={"endpoint": fast(student.endpoint)})
    return config.model_copy(
        update={
            "references": [fast(ref) for ref in config.references],
            "judge": fast(config.judge).model_copy(update={"panel": panel}),
            "student": student,
        }
    )


def run_round_steps(config: Config, prompt_ids: list[str]):
    """Answer and judge with `config` resolved to a running sandbox."""
    answers = answer_prompts(
        config, ROUND_ID, prompt_ids, champion_id=CHAMPION_ID, champion_path=None
    )
    pairs = train_battle_pairs(config, ROUND_ID, prompt_ids, CHAMPION_ID)
    judged = judge_battles(config, ROUND_ID, pairs, "train")
    return answers, pairs, judged


def table_counts(config: Config) -> dict[str, int]:
    with connect(config.warehouse.path, read_only=True) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


def sandbox_stats(server: SandboxServer) -> dict:
    base = server.base_url.removesuffix("/v1")
    return httpx.get(f"{base}/sandbox/stats", timeout=5).json()


def assert_no_duplicates(config: Config) -> None:
    with connect(config.warehouse.path, read_only=True) as con:
        for table, key in KEYS.items():
            n_rows, n_keys = con.execute(
                f"select count(*), count(distinct {key}) from {table}"
            ).fetchone()
            assert n_rows == n_keys, f"duplicate {key} in {table}"
        n_rows, n_keys = con.execute(
            "select count(*), count(distinct (prompt_id, model_id, sample_idx)) from responses"
        ).fetchone()
        assert n_rows == n_keys


@pytest.fixture
def served_config(tmp_path: Path) -> Config:
    return served_champion_config(tmp_path)


@pytest.fixture
def sandbox(served_config: Config) -> Iterator[SandboxServer]:
    with start_sandbox(served_config.sandbox) as server:
        yield server


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flywheel.llm.checkpoints import save_checkpoint
    from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

    texts = [t.prompt for t in generate_tasks(200, seed=3)]
    tokenizer = build_tokenizer(texts, vocab_size=300)
    model = build_tiny_llama(
        tokenizer, seed=0, hidden_size=32, n_layers=1, n_heads=2, intermediate_size=64
    )
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("student") / "v0")
