"""RL's win-rate stop and verifiable reward (llm/winrate_stop.py, llm/verifiable_reward.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from flywheel.config import ConfigError, parse_config
from flywheel.llm.stages.rm_rl import RLConfig, train_rm_rl
from flywheel.llm.verifiable_reward import checkable_share, checker_rewards, mix_rewards
from flywheel.llm.winrate_stop import (
    WinRateCheck,
    WinRateSetup,
    winrate_split,
    winrate_stop_reason,
)
from flywheel.sandbox.skills import generate_tasks
from tests.conftest import REPO_ROOT
from tests.llm.stages.test_stages import (
    CFG,
    PAIR_ROWS,
    RL_CFG,
    _prompt,
    _weights,
)


def _check(step: int, win_rate: float | None) -> WinRateCheck:
    return WinRateCheck(step, win_rate, n_battles=8, n_wins=0, n_losses=0, n_unjudged=0)


def _smoke_with(training: dict, prompts: dict | None = None) -> dict:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    for section, updates in training.items():
        data["training"].setdefault(section, {}).update(updates)
    data["prompts"].update(prompts or {})
    return data


def test_winrate_stop_fires_only_when_the_latest_falls_more_than_drop_below_the_best() -> None:
    assert winrate_stop_reason([_check(0, 0.5)], 0.1) is None
    assert winrate_stop_reason([_check(0, 0.5), _check(5, 0.45)], 0.1) is None
    assert winrate_stop_reason([_check(0, 0.5), _check(5, 0.7), _check(10, 0.61)], 0.1) is None
    reason = winrate_stop_reason([_check(0, 0.5), _check(5, 0.7), _check(10, 0.55)], 0.1)
    assert reason is not None and "0.550 at step 10" in reason and "best 0.700 (step 5)" in reason


def test_a_check_without_a_win_rate_neither_stops_nor_counts_as_best() -> None:
    assert winrate_stop_reason([_check(0, 0.5), _check(5, None)], 0.1) is None
    assert winrate_stop_reason([_check(0, 0.5), _check(5, None), _check(10, 0.3)], 0.1)


def test_winrate_split_is_seeded_disjoint_and_leaves_rl_prompts() -> None:
    prompts = [_prompt(i) for i in range(20)]
    train, heldout = winrate_split(prompts, 5, seed=1)
    assert len(heldout) == 5 and len(train) == 15
    assert sorted(map(str, train + heldout)) == sorted(map(str, prompts))
    assert winrate_split(prompts, 5, seed=1) == (train, heldout)
    assert winrate_split(prompts, 5, seed=2)[1] != heldout
    with pytest.raises(ValueError, match="winrate_prompts below 20"):
        winrate_split(prompts, 20, seed=1)


def test_checker_reward_mixes_only_where_a_checker_exists() -> None:
    task = generate_tasks(1, seed=0)[0]
    prompts = [
        [{"role": "user", "content": task.prompt}],
        [{"role": "user", "content": task.prompt}],
        [{"role": "user", "content": "Write a poem about the sea."}],
    ]
    completions = [
        [{"role": "assistant", "content": f"Answer: {task.answer}"}],
        [{"role": "assistant", "content": "Answer: definitely-wrong-123"}],
        [{"role": "assistant", "content": "Waves."}],
    ]
    checks = checker_rewards(prompts, completions)
    assert checks == [1.0, -1.0, None]
    mixed = mix_rewards([0.2, 0.2, 0.2], checks, weight=0.5)
    assert mixed.tolist() == pytest.approx([0.6, -0.4, 0.2])  # (1-w) rm + w (+1 / -1)
    assert mix_rewards([0.2, 0.3], [1.0, None], weight=0.0).tolist() == [0.2, 0.3]
    assert mix_rewards(np.array([0.0]), [-1.0], weight=1.0).tolist() == [-1.0]
    assert checkable_share(prompts) == pytest.approx(2 / 3)


def test_rl_settings_are_validated_with_the_field_and_the_fix() -> None:
    config = parse_config(_smoke_with({"rl": {"winrate_check_every": 5}}), "smoke.yaml")
    assert config.training.rl.winrate_prompts == 32 and config.training.rl.winrate_drop == 0.1
    assert RLConfig().verifiable_reward_weight == 0.0
    assert RLConfig().winrate_check_every == 0
    for bad, expected in (
        ({"rl": {"verifiable_reward_weight": 1.5}}, "verifiable_reward_weight"),
        ({"rl": {"winrate_drop": 0}}, "winrate_drop"),
        ({"rl": {"winrate_check_every": -1}}, "winrate_check_every"),
    ):
        with pytest.raises(ConfigError, match=expected):
            parse_config(_smoke_with(bad), "smoke.yaml")
    launched = _smoke_with({"rl": {"winrate_check_every": 5}})
    launched["training"]["launcher"] = "accelerate"
    with pytest.raises(ConfigError) as refused:
        parse_config(launched, "smoke.yaml")
    assert "training.rl.winrate_check_every = 5" in str(refused.value)
    assert "training.launcher: in_process" in str(refused.value)
    whole_slice = _smoke_with({"rl": {"winrate_check_every": 5, "winrate_prompts": 40}})
    with pytest.raises(ConfigError, match="winrate_prompts below 40"):
        parse_config(whole_slice, "smoke.yaml")


class ScriptedJudge:
    """A judge whose win rate falls by 0.2 per check after the first: 0.45, 0.25, ..."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, prompts: list, champion: list[str], policy: list[str], step: int):
        self.calls.append((len(prompts), len(champion), len(policy)))
        return _check(step, 0.45 - 0.2 * (len(self.calls) - 1))


def _train_with_judge(base: Path, out: Path, judge: ScriptedJudge, keep_best: bool) -> dict:
    rl_cfg = RLConfig(
        **RL_CFG.model_dump()
        | {
            "max_steps": 6,
            "winrate_check_every": 1,
            "winrate_drop": 0.1,
            "winrate_keep_best": keep_best,
        }
    )
    result = train_rm_rl(
        base,
        PAIR_ROWS,
        [_prompt(i) for i in range(8)],
        out,
        CFG.model_copy(update={"max_steps": 1}),
        rl_cfg,
        seed=0,
        max_completion_tokens=4,
        winrate=WinRateSetup(judge, [_prompt(i) for i in range(20, 23)]),
    )
    return result.metrics


def test_rl_stops_when_the_judged_win_rate_falls_and_keeps_the_best_checks_policy(
    base_checkpoint: Path,
    tmp_path: Path,
) -> None:
    judge = ScriptedJudge()
    m = _train_with_judge(base_checkpoint, tmp_path / "rl", judge, keep_best=True)
    # checks: 0.5 before RL (the champion itself), 0.45 at step 1, 0.25 at step 2: stop
    assert judge.calls == [(3, 3, 3), (3, 3, 3)]
    assert [c["win_rate"] for c in m["rl_winrate_checks"]] == pytest.approx([0.5, 0.45, 0.25])
    assert m["rl_stopped_early"] is True and m["rl_stop_rule"] == "winrate"
    assert m["rl_stop_step"] == 2 and m["n_steps"] == 2
    assert "fell more than 0.1 below its best 0.500" in m["rl_stop_reason"]
    assert m["rl_winrate_best"] == 0.5 and m["rl_winrate_n_prompts"] == 3
    # the best check was the champion's own: its weights are what is published
    assert m["rl_winrate_kept_step"] == 0
    base, published = _weights(base_checkpoint), _weights(tmp_path / "rl")
    assert all(torch.equal(base[name], published[name]) for name in base)


def test_without_keep_best_the_policy_at_the_stop_is_published(
    base_checkpoint: Path,
    tmp_path: Path,
) -> None:
    m = _train_with_judge(base_checkpoint, tmp_path / "rl", ScriptedJudge(), keep_best=False)
    assert m["rl_stop_step"] == 2 and m["rl_winrate_kept_step"] == 2
    base, published = _weights(base_checkpoint), _weights(tmp_path / "rl")
    assert any(not torch.equal(base[name], published[name]) for name in base)


def test_winrate_check_without_a_judge_is_refused(base_checkpoint: Path, tmp_path: Path) -> None:
    rl_cfg = RLConfig(**{**RL_CFG.model_dump(), "winrate_check_every": 1})
    with pytest.raises(ValueError, match="no judge"):
        train_rm_rl(base_checkpoint, PAIR_ROWS, [_prompt(1)], tmp_path / "rl", CFG, rl_cfg, 0)


def test_verifiable_weight_mixes_the_checker_and_records_its_share(
    base_checkpoint: Path,
    tmp_path: Path,
) -> None:
    rl_cfg = RLConfig(**{**RL_CFG.model_dump(), "verifiable_reward_weight": 0.5})
    tasks = generate_tasks(4, seed=0)
    prompts = [[{"role": "user", "content": t.prompt}] for t in tasks]
    prompts += [[{"role": "user", "content": f"Write a poem about {n}."}] for n in range(4)]
    result = train_rm_rl(
        base_checkpoint,
        PAIR_ROWS,
        prompts,
        tmp_path / "rl",
        CFG.model_copy(update={"max_steps": 1}),
        rl_cfg,
        seed=0,
        max_completion_tokens=4,
    )
    m = result.metrics
    assert m["rl_verifiable_reward_weight"] == 0.5
    assert m["rl_verifiable_prompt_share"] == pytest.approx(0.5)
    assert 0 < m["rl_verifiable_sample_share"] < 1
    assert m["rl_checker_pass_first"] is not None
    assert m["rm_ensemble_size"] == 1  # one reward model, standardised for the mix
