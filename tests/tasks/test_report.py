"""The report's pure parts: rounding, and the trend picture from literal rows."""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET

import pandas as pd

from flywheel.tasks.report import round_metrics_rows, significant, trend_markdown
from flywheel.tasks.trend_chart import TrendPoint, svg_data_uri, trend_svg

SVG = "{http://www.w3.org/2000/svg}"

ROUNDS = [
    TrendPoint(1, 0.526, 0.5, 0.564, 0.5, 0.1, promoted=False),
    TrendPoint(2, None, None, None, None, None, promoted=False),  # stage skipped: no A/B
    TrendPoint(3, 0.71, 0.62, 0.8, 0.66, 0.35, promoted=True),
]


def test_significant_keeps_three_digits_and_leaves_other_values_alone() -> None:
    assert significant(0.5263157894736842) == 0.526
    assert significant(1234.5678) == 1230.0
    assert significant(0.000123456) == 0.000123
    assert significant(0.0) == 0.0
    assert significant(7) == 7 and significant("v1") == "v1" and significant(None) is None
    assert math.isnan(significant(float("nan")))  # a skipped or failed stage has no loss
    assert significant(float("inf")) == float("inf")


def test_round_metrics_rows_round_floats_and_keep_column_order() -> None:
    frame = pd.DataFrame(
        [{"round_id": 1, "win_rate": 0.5263157894736842, "promoted": False, "n_sft": 38}]
    )
    rows = round_metrics_rows(frame)
    assert rows == [{"round_id": 1, "win_rate": 0.526, "promoted": False, "n_sft": 38}]
    assert list(rows[0]) == ["round_id", "win_rate", "promoted", "n_sft"]


def test_trend_svg_is_valid_svg_with_one_interval_per_evaluated_round() -> None:
    root = ET.fromstring(trend_svg(ROUNDS))
    assert root.tag == f"{SVG}svg"
    intervals = [e for e in root.iter(f"{SVG}line") if e.get("stroke-width") == "6"]
    assert len(intervals) == 2, "round 2 has no A/B and so no interval"
    points = [e.findtext(f"{SVG}title") for e in root.iter(f"{SVG}circle")]
    assert "round 3: 0.71" in points and "round 3: 0.66" in points and "round 3: 0.35" in points
    assert not any(p.startswith("round 2") for p in points)


def test_trend_svg_breaks_lines_at_a_round_without_evaluation_and_stars_promotions() -> None:
    root = ET.fromstring(trend_svg(ROUNDS))
    win_rate_lines = [e for e in root.iter(f"{SVG}polyline") if e.get("stroke") == "#2563eb"]
    assert len(win_rate_lines) == 2, "the gap at round 2 splits the win-rate line"
    stars = [e for e in root.iter(f"{SVG}text") if e.findtext(f"{SVG}title") == "round 3: promoted"]
    assert len(stars) == 1


def test_trend_svg_of_no_rounds_says_so() -> None:
    assert "no rounds yet" in trend_svg([])


def test_trend_markdown_embeds_the_svg_as_a_data_image() -> None:
    frame = pd.DataFrame(
        [
            {
                "round_id": 1,
                "win_rate": 0.6,
                "win_rate_ci_low": 0.55,
                "win_rate_ci_high": 0.65,
                "lc_win_rate": 0.58,
                "sandbox_accuracy": float("nan"),
                "promoted": True,
            }
        ]
    )
    markdown = trend_markdown(frame)
    assert "over 1 round (1 promoted)" in markdown
    uri = markdown.split("](", 1)[1].split(")", 1)[0]
    assert uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert ET.fromstring(svg).tag == f"{SVG}svg"
    assert svg_data_uri("<svg/>") == "data:image/svg+xml;base64,PHN2Zy8+"
