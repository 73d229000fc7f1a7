"""The RL win-rate check's judge (tasks/rl_winrate.py) against the sandbox judge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flywheel.config import Config, resolve_sandbox_endpoints
from flywheel.sandbox.server import SandboxServer, start_sandbox
from flywheel.sandbox.skills import generate_tasks
from flywheel.tasks.rl_winrate import judged_check
from flywheel.warehouse.store import connect_warehouse
from tests.conftest import load_config_in

ROUND_ID = 3


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config_in(tmp_path, "smoke")


@pytest.fixture
def sandbox(config: Config) -> Iterator[SandboxServer]:
    with start_sandbox(config.sandbox) as server:
        yield server


def live(config: Config, server: SandboxServer) -> Config:
    """`config` with its sandbox endpoints calling the running `server`."""
    return resolve_sandbox_endpoints(config, server.base_url)


def _sent(server: SandboxServer) -> int:
    base = server.base_url.removesuffix("/v1")
    return httpx.get(f"{base}/sandbox/stats", timeout=5).json()["total"]


def _heldout(n: int) -> tuple[list, list[str], list[str]]:
    """Prompts, answers that are wrong (the champion's) and right (the policy's)."""
    tasks = generate_tasks(n, seed=5)
    prompts = [[{"role": "user", "content": t.prompt}] for t in tasks]
    return prompts, ["Answer: no idea"] * n, [f"Answer: {t.answer}" for t in tasks]


def test_check_judges_both_orders_stores_its_calls_and_sends_nothing_on_a_rerun(
    config: Config, sandbox: SandboxServer
) -> None:
    prompts, champion, policy = _heldout(6)
    policy[5] = champion[5]  # the same answer: a tie without a judge call
    check = judged_check(live(config, sandbox), ROUND_ID, prompts, champion, policy, step=4)
    assert check.step == 4 and check.n_battles + check.n_unjudged == 6
    assert check.n_sent == 10  # 5 battles x 2 orders
    assert check.win_rate is not None and check.win_rate > 0.7  # right answers beat wrong ones
    with connect_warehouse(config.warehouse) as con:
        calls = con.execute("select round_id, endpoint, request_json from llm_calls").fetchall()
    assert len(calls) == 10 and {(r, e) for r, e, _ in calls} == {(ROUND_ID, "judge")}
    first_shown = [json.loads(r)["messages"][-1]["content"] for _, _, r in calls]
    assert any(text.find(policy[0]) < text.find(champion[0]) for text in first_shown)
    assert any(text.find(champion[0]) < text.find(policy[0]) for text in first_shown)

    n_sent_before = _sent(sandbox)
    again = judged_check(live(config, sandbox), ROUND_ID, prompts, champion, policy, step=4)
    assert again.n_sent == 0 and _sent(sandbox) == n_sent_before
    assert again.win_rate == check.win_rate
    with connect_warehouse(config.warehouse) as con:
        assert con.execute("select count(*) from llm_calls").fetchone() == (10,)


def test_a_policy_that_answers_worse_than_the_champion_has_a_low_win_rate(
    config: Config, sandbox: SandboxServer
) -> None:
    prompts, wrong, right = _heldout(6)
    check = judged_check(live(config, sandbox), ROUND_ID, prompts, right, wrong, step=2)
    assert check.win_rate is not None and check.win_rate < 0.3
    assert check.n_losses >= 4


def test_the_rl_stage_holds_the_check_prompts_out_of_rl_and_binds_the_rounds_judge(
    tmp_path: Path,
) -> None:
    from flywheel.tasks.train import rl_prompts
    from tests.tasks.answer_judge_fixtures import insert_prompts

    rl = {"winrate_check_every": 5, "winrate_prompts": 8}
    config = load_config_in(tmp_path, "smoke", training={"rl": rl})
    insert_prompts(config, 20)  # slice 1
    with start_sandbox(config.sandbox) as server:
        train, winrate = rl_prompts(resolve_sandbox_endpoints(config, server.base_url), 1)
        assert winrate is not None and len(winrate.prompts) == 8 and len(train) == 12
        assert not {json.dumps(p) for p in train} & {json.dumps(p) for p in winrate.prompts}
        champion = ["Answer: no idea"] * 8
        check = winrate.judge(winrate.prompts, champion, ["Answer: 7"] * 8, 5)
    assert check.step == 5 and check.n_sent == 16
    with connect_warehouse(config.warehouse) as con:
        assert con.execute("select distinct round_id from llm_calls").fetchall() == [(1,)]
    off = load_config_in(tmp_path / "off", "smoke")
    insert_prompts(off, 20)
    every_prompt, no_check = rl_prompts(off, 1)  # the check off: RL trains on all
    assert no_check is None and len(every_prompt) == 20
