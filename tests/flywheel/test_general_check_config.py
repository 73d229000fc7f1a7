"""The evaluation section's general-set fields: defaults, edge values, refusals."""

from __future__ import annotations

import copy

import pytest

from flywheel.config import ConfigError, parse_config
from flywheel.config.evaluation import EvaluationConfig
from tests.flywheel.test_config_checks import SMOKE


def _evaluation(**fields: object) -> dict:
    data = copy.deepcopy(SMOKE)
    data.setdefault("evaluation", {}).update(fields)
    return data


def test_by_default_the_general_set_is_measured_and_only_reported() -> None:
    evaluation = EvaluationConfig()
    assert evaluation.general_check is True
    assert evaluation.general_max_nll_increase is None
    assert evaluation.general_max_collapse_share is None


def test_limits_at_their_edges_are_accepted() -> None:
    config = parse_config(_evaluation(general_max_nll_increase=0, general_max_collapse_share=1))
    assert config.evaluation.general_max_nll_increase == 0.0
    assert config.evaluation.general_max_collapse_share == 1.0
    config = parse_config(_evaluation(general_max_nll_increase=0.05))
    assert config.evaluation.general_max_nll_increase == 0.05


@pytest.mark.parametrize(
    ("field", "value"),
    [("general_max_nll_increase", -0.01), ("general_max_collapse_share", 1.5)],
)
def test_limits_out_of_range_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"evaluation.{field}"):
        parse_config(_evaluation(**{field: value}), "test.yaml")


def test_a_limit_without_the_check_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_evaluation(general_check=False, general_max_nll_increase=0.05), "test.yaml")
    message = str(refused.value)
    assert "evaluation.general_max_nll_increase = 0.05" in message
    assert "Fix: set general_check: true, or general_max_nll_increase: null" in message


def test_the_check_may_be_turned_off_without_limits() -> None:
    assert parse_config(_evaluation(general_check=False)).evaluation.general_check is False


def test_every_field_has_one_line_of_help() -> None:
    for name in ("general_check", "general_max_nll_increase", "general_max_collapse_share"):
        assert EvaluationConfig.model_fields[name].description
