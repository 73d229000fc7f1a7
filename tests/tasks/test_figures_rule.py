"""The one rounding rule (flywheel/figures.py): each kind of figure, and the numbers tables keep."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from flywheel.figures import (
    count,
    duration,
    interval,
    measure,
    measure_value,
    share,
    share_value,
    usd,
    wins_ties_losses,
)


def test_a_share_has_three_decimals_and_is_never_a_percentage() -> None:
    assert share(0.6308610400682012) == "0.631"
    assert share(0.015416666666666667) == "0.015"
    assert share(1) == "1.000" and share(0.0) == "0.000"


def test_an_interval_is_one_cell_with_the_share_first() -> None:
    assert interval(0.6341, 0.6109, 0.6571) == "0.634 [0.611, 0.657]"
    assert interval(0.5, None, 0.6) == "0.500"
    assert interval(None, 0.1, 0.2) == "-"


def test_counts_are_whole_with_thousands_separated() -> None:
    assert count(1225) == "1,225" and count(7.0) == "7" and count(0) == "0"
    assert wins_ties_losses(71, 304, 18) == "71/304/18"
    assert wins_ties_losses(71, None, 18) == "-"


def test_a_measure_has_three_significant_digits_and_is_whole_from_100() -> None:
    assert measure(2.5183) == "2.52"
    assert measure(0.012345) == "0.0123"
    assert measure(1.0) == "1.00"
    assert measure(99.96) == "100"
    assert measure(1012.4) == "1012"
    assert measure(-0.5) == "-0.500"
    assert measure(float("inf")) == "inf"


def test_cost_and_duration() -> None:
    assert usd(0.012345) == "$0.0123" and usd(0) == "$0.0000"
    assert duration(84.6) == "85 s"


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA])
def test_an_unknown_figure_is_a_dash_everywhere(missing: object) -> None:
    for write in (share, count, measure, usd, duration):
        assert write(missing) == "-"
    assert share_value(missing) is None and measure_value(missing) is None


def test_a_number_kept_in_a_table_has_the_digits_the_text_shows() -> None:
    for value in (0.6308610400682012, 0.0154166, 0.5, 0.99951):
        assert share_value(value) == float(share(value))
    for value in (2.5183, 0.012345, 1012.4, 150.0):
        assert measure_value(value) == float(measure(value))
    assert measure_value(float("inf")) is None
    assert not math.isnan(share_value(0.5))
