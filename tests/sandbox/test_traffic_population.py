"""The share of the planted flatterers among the simulated users: the default day unchanged,
0 a clean population, 1 flatterers only, the honest personas keeping their proportions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import InputError
from flywheel.sandbox.traffic_day import write_traffic_day
from flywheel.sandbox.traffic_personas import PERSONAS, with_flatterers
from tests.conftest import load_config_in


def shares(personas) -> dict[str, float]:
    return {p.name: p.share for p in personas}


def test_no_share_keeps_the_personas_and_a_share_keeps_the_honest_proportions() -> None:
    assert with_flatterers(None) == PERSONAS
    assert "flatterer" not in shares(with_flatterers(0))
    assert list(shares(with_flatterers(1))) == ["flatterer"]
    half = shares(with_flatterers(0.5))
    assert half["flatterer"] == pytest.approx(0.5)
    assert sum(half.values()) == pytest.approx(1.0)
    default = shares(PERSONAS)
    assert half["student"] / half["writer"] == pytest.approx(default["student"] / default["writer"])


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(InputError, match="flatterer share"):
        with_flatterers(share)


def planted_of_day(tmp_path: Path, share: float | None, name: str) -> list[bool]:
    sandbox = load_config_in(tmp_path).sandbox
    report = write_traffic_day(sandbox, 1, tmp_path / name, 60, flatterer_share=share)
    truth = [json.loads(line) for line in report.truth_path.read_text().splitlines()]
    return [row["planted"] for row in truth]


def test_a_clean_day_has_no_flatterer_and_a_flatterers_day_only_flatterers(
    tmp_path: Path,
) -> None:
    assert not any(planted_of_day(tmp_path, 0.0, "clean"))
    assert all(planted_of_day(tmp_path, 1.0, "flatterers"))
    default = planted_of_day(tmp_path, None, "default")
    assert any(default) and not all(default)
