"""Config checks at load time: what `flywheel serve`, the client and TRL would refuse later."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from flywheel.config import ConfigError, load_config, parse_config
from tests.conftest import REPO_ROOT

SMOKE = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())


def smoke_with(section: str, key: str, value: Any, index: int | None = None) -> dict[str, Any]:
    data = copy.deepcopy(SMOKE)
    node = data[section] if index is None else data[section][index]
    node[key] = value
    return data


def refusal_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_config(data, "test.yaml")
    return str(refused.value)


@pytest.mark.parametrize("name", ["demo", "smoke"])
def test_shipped_configs_pass_every_check(name: str) -> None:
    load_config(REPO_ROOT / "configs" / f"{name}.yaml")


@pytest.mark.parametrize("cron", ["every night at 2", "0 2 * *", "61 2 * * *", "H 2 * * *"])
def test_invalid_cron_is_refused_at_load_with_an_example(cron: str) -> None:
    message = refusal_of(smoke_with("schedule", "cron", cron))
    assert f'schedule.cron = "{cron}": ' in message
    assert "Fix: write five fields" in message and '"0 2 * * *"' in message


@pytest.mark.parametrize("cron", ["0 2 * * *", "*/15 * * * 1-5", "30 3 1 * *", "@daily"])
def test_valid_cron_is_accepted(cron: str) -> None:
    assert parse_config(smoke_with("schedule", "cron", cron)).schedule.cron == cron


def test_unknown_timezone_is_refused_at_load() -> None:
    message = refusal_of(smoke_with("schedule", "timezone", "Mars/Olympus"))
    assert 'schedule.timezone = "Mars/Olympus": not an IANA time zone. Fix:' in message
    assert "Europe/Berlin" in message


def test_iana_timezone_is_accepted() -> None:
    config = parse_config(smoke_with("schedule", "timezone", "America/New_York"))
    assert config.schedule.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("not a url", "neither `sandbox` nor an http:// or https:// URL"),
        ("ftp://example.com/v1", "neither `sandbox` nor an http:// or https:// URL"),
        ("127.0.0.1:8000/v1", "neither `sandbox` nor an http:// or https:// URL"),
        ("http://", "the URL has no host"),
        ("http://localhost:99999/v1", "not a valid URL"),
    ],
)
def test_base_url_that_is_not_an_http_url_is_refused_with_the_endpoint_field(
    base_url: str, problem: str
) -> None:
    message = refusal_of(smoke_with("references", "base_url", base_url, index=1))
    assert f'references.1.base_url = "{base_url}": {problem}' in message
    assert "Fix: write the server's OpenAI-compatible base URL" in message


def test_judge_and_student_endpoint_urls_are_checked_too() -> None:
    assert 'judge.base_url = "nowhere"' in refusal_of(smoke_with("judge", "base_url", "nowhere"))
    student_endpoint = {"name": "student", "base_url": "localhost", "model": "m"}
    message = refusal_of(smoke_with("student", "endpoint", student_endpoint))
    assert 'student.endpoint.base_url = "localhost"' in message


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000/v1", "https://api.openai.com/v1"])
def test_http_and_https_urls_with_a_host_are_accepted(base_url: str) -> None:
    data = smoke_with("references", "base_url", base_url, index=1)
    assert parse_config(data).references[1].base_url == base_url


@pytest.mark.parametrize("anchor", ["ref:nope", "strong", "judge"])
def test_anchor_model_that_does_not_battle_is_refused_naming_the_valid_ones(anchor: str) -> None:
    message = refusal_of(smoke_with("evaluation", "anchor_model", anchor))
    assert f'evaluation.anchor_model = "{anchor}": names no model that battles' in message
    assert "Fix: set it to one of ref:strong, ref:mixed" in message


def test_anchor_model_may_be_any_reference_or_unset() -> None:
    assert parse_config(smoke_with("evaluation", "anchor_model", "ref:mixed"))
    assert parse_config(smoke_with("evaluation", "anchor_model", None))


@pytest.mark.parametrize(("batch_size", "num_generations"), [(16, 6), (16, 32), (3, 2)])
def test_rl_groups_that_do_not_divide_the_generation_batch_are_refused(
    batch_size: int, num_generations: int
) -> None:
    data = copy.deepcopy(SMOKE)
    data["training"]["rl"] |= {"batch_size": batch_size, "num_generations": num_generations}
    message = refusal_of(data)
    assert f"training.rl.num_generations = {num_generations}: GRPO's generation batch" in message
    assert f"training.rl.batch_size to a multiple of {num_generations}" in message


def test_rl_group_fix_lists_the_divisors_of_the_batch() -> None:
    data = copy.deepcopy(SMOKE)
    data["training"]["rl"] |= {"batch_size": 16, "num_generations": 6}
    assert "a divisor of 16 (2, 4, 8, 16)" in refusal_of(data)


def test_rl_groups_that_divide_the_batch_are_accepted() -> None:
    data = copy.deepcopy(SMOKE)
    data["training"]["rl"] |= {"batch_size": 12, "num_generations": 6}
    assert parse_config(data).training.rl.num_generations == 6


def test_every_field_problem_is_reported_in_one_refusal() -> None:
    data = smoke_with("schedule", "cron", "nightly")
    data["schedule"]["timezone"] = "Mars/Olympus"
    data["judge"]["base_url"] = "not a url"
    message = refusal_of(data)
    assert "schedule.cron" in message and "schedule.timezone" in message
    assert "judge.base_url" in message


def test_an_unknown_judge_prompt_version_is_refused_naming_the_known_ones() -> None:
    message = refusal_of(smoke_with("judge", "prompt_version", "v9"))
    assert "judge.prompt_version" in message and "arena-hard-v1" in message and "json-v1" in message


def test_panel_judges_need_their_own_names_and_a_sandbox_model() -> None:
    twin = [{"name": "judge", "base_url": "sandbox", "model": "sandbox-judge"}]
    assert "repeated or reserved: ['judge']" in refusal_of(smoke_with("judge", "panel", twin))
    unknown = [{"name": "judge-2", "base_url": "sandbox", "model": "no-such-model"}]
    assert "sandbox.models has no 'no-such-model'" in refusal_of(
        smoke_with("judge", "panel", unknown)
    )
