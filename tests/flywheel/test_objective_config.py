"""The evaluation section's objective guard and first-champion limit: defaults, edge values,
refusals that name the field and the fix."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from flywheel.config import ConfigError, parse_config
from flywheel.config.evaluation import EvaluationConfig
from tests.flywheel.test_config_checks import SMOKE


def _evaluation(**fields: object) -> dict:
    data = copy.deepcopy(SMOKE)
    data.setdefault("evaluation", {}).update(fields)
    return data


def test_by_default_the_guard_is_on_with_a_five_point_margin_and_no_first_limit() -> None:
    evaluation = EvaluationConfig()
    assert evaluation.objective_max_drop == 0.05
    assert evaluation.objective_set is None
    assert evaluation.general_max_nll_increase_from_first is None


def test_margins_at_their_edges_are_accepted() -> None:
    config = parse_config(_evaluation(objective_max_drop=0, general_max_nll_increase_from_first=0))
    assert config.evaluation.objective_max_drop == 0.0
    assert config.evaluation.general_max_nll_increase_from_first == 0.0
    assert parse_config(_evaluation(objective_max_drop=None)).evaluation.objective_max_drop is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("objective_max_drop", -0.01),
        ("objective_max_drop", 1.0),
        ("general_max_nll_increase_from_first", -0.05),
    ],
)
def test_margins_out_of_range_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"evaluation.{field}"):
        parse_config(_evaluation(**{field: value}), "test.yaml")


def test_the_first_limit_without_the_general_check_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(
            _evaluation(general_check=False, general_max_nll_increase_from_first=0.05), "test.yaml"
        )
    assert (
        "evaluation.general_max_nll_increase_from_first = 0.05: is a limit on the general set"
        in str(refused.value)
    )
    assert "Fix: set general_check: true, or general_max_nll_increase_from_first: null" in str(
        refused.value
    )


def test_an_objective_set_that_is_readable_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "evals.jsonl"
    path.write_text(json.dumps({"prompt": "What is 3 + 4?", "answer": "7"}) + "\n")
    assert parse_config(_evaluation(objective_set=str(path))).evaluation.objective_set == str(path)


def test_a_missing_objective_set_is_refused_at_load_naming_the_field(tmp_path: Path) -> None:
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(ConfigError) as refused:
        parse_config(_evaluation(objective_set=str(missing)), "test.yaml")
    line = [row for row in str(refused.value).splitlines() if "objective_set" in row]
    assert len(line) == 1
    assert line[0].strip().startswith(f'evaluation.objective_set = "{missing}": objective set')
    assert "no such file. Fix: point evaluation.objective_set at a JSONL file" in line[0]


def test_a_bad_line_of_the_objective_set_is_refused_at_load_naming_the_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "evals.jsonl"
    path.write_text('{"prompt": "What is 3 + 4?", "answer": "7"}\n{"prompt": "2 + 2?"}\n')
    with pytest.raises(ConfigError) as refused:
        parse_config(_evaluation(objective_set=str(path)), "test.yaml")
    assert f"objective set {path} line 2: no `answer` (the expected final answer). Fix:" in str(
        refused.value
    )


def test_every_new_field_has_one_line_of_help() -> None:
    for name in ("objective_set", "objective_max_drop", "general_max_nll_increase_from_first"):
        assert EvaluationConfig.model_fields[name].description
