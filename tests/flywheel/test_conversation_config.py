"""evaluation.mode, combine and conversations: what is accepted, what is refused and how the
simulator endpoint is resolved like every other sandbox endpoint."""

from __future__ import annotations

import copy

import pytest

from flywheel.config import ConfigError, parse_config, resolve_sandbox_endpoints
from tests.flywheel.test_config_checks import SMOKE

SIMULATOR = {"name": "sim-user", "base_url": "sandbox", "model": "sandbox-user"}
SERVED_STUDENT = {"endpoint": {"name": "student", "base_url": "sandbox", "model": "s-{version}"}}


def _config(evaluation: dict, student: dict | None = None, with_user: bool = True) -> dict:
    data = copy.deepcopy(SMOKE)
    data.setdefault("evaluation", {}).update(evaluation)
    data["student"].update(SERVED_STUDENT if student is None else student)
    if with_user:
        data["sandbox"]["models"]["sandbox-user"] = {"role": "user"}
    return data


def test_single_turn_is_the_default_and_needs_no_simulator() -> None:
    config = parse_config(copy.deepcopy(SMOKE))
    assert config.evaluation.mode == "single_turn"
    assert config.evaluation.gates_on == ("single_turn",)


def test_conversations_mode_without_a_simulator_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"evaluation.conversations.simulator.*Fix: set"):
        parse_config(_config({"mode": "conversations"}))


def test_combine_outside_mode_both_is_refused() -> None:
    evaluation = {"combine": "both_must_pass", "conversations": {"simulator": SIMULATOR}}
    with pytest.raises(ConfigError, match=r"evaluation.combine.*set mode: both"):
        parse_config(_config(evaluation))


def test_combine_decides_which_results_gate() -> None:
    both = {"mode": "both", "conversations": {"simulator": SIMULATOR}}
    assert parse_config(_config(both)).evaluation.gates_on == ("single_turn", "conversations")
    only = both | {"combine": "conversations_only_gates"}
    assert parse_config(_config(only)).evaluation.gates_on == ("conversations",)


def test_a_conversation_of_one_turn_is_refused() -> None:
    evaluation = {
        "mode": "conversations",
        "conversations": {"simulator": SIMULATOR, "max_turns": 1},
    }
    with pytest.raises(ConfigError, match="max_turns"):
        parse_config(_config(evaluation))


@pytest.mark.parametrize("field", ["simulator_prompt_version", "judge_prompt_version"])
def test_unknown_prompt_versions_are_refused_with_the_known_ones(field: str) -> None:
    evaluation = {"mode": "conversations", "conversations": {"simulator": SIMULATOR, field: "x"}}
    with pytest.raises(ConfigError, match=f'{field} = "x".*use one of'):
        parse_config(_config(evaluation))


def test_a_conversation_protocol_is_not_a_pairwise_judge_version() -> None:
    data = _config({})
    data["judge"]["prompt_version"] = "conv-five-labels-v1"
    with pytest.raises(ConfigError, match="judge.prompt_version"):
        parse_config(data)


def test_a_local_student_cannot_hold_conversations() -> None:
    evaluation = {"mode": "conversations", "conversations": {"simulator": SIMULATOR}}
    with pytest.raises(ConfigError, match=r'evaluation.mode = "conversations".*backend'):
        parse_config(_config(evaluation, student={}))


def test_a_simulator_naming_no_sandbox_model_is_refused() -> None:
    evaluation = {"mode": "conversations", "conversations": {"simulator": SIMULATOR}}
    with pytest.raises(ConfigError, match="sandbox-user"):
        parse_config(_config(evaluation, with_user=False))


def test_the_simulator_is_resolved_to_the_running_sandbox_like_the_others() -> None:
    evaluation = {"mode": "conversations", "conversations": {"simulator": SIMULATOR}}
    config = parse_config(_config(evaluation))
    assert config.evaluation.conversations.simulator in config.sandbox_endpoints()
    resolved = resolve_sandbox_endpoints(config, "http://127.0.0.1:9/v1")
    assert resolved.evaluation.conversations.simulator.url == "http://127.0.0.1:9/v1"
    assert resolved.fingerprint() == config.fingerprint()
