"""The trend chart writes its values: each round's win rate, interval bounds and accuracy are
text in the SVG (an embedded SVG image never shows tooltips)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from flywheel.figures import share
from flywheel.tasks.trend_chart import (
    MAX_LABELLED_ROUNDS,
    TrendPoint,
    labelled,
    svg_data_uri,
    trend_svg,
)

SVG = "{http://www.w3.org/2000/svg}"

ROUNDS = [
    TrendPoint(1, 0.6341, 0.6109, 0.6571, 0.62, 0.4123, promoted=False),
    TrendPoint(2, None, None, None, None, None, promoted=False),  # stage skipped: no A/B
    TrendPoint(3, 0.71, 0.62, 0.8, 0.66, 0.6476, promoted=True),
    TrendPoint(4, 0.48, 0.43, 0.53, 0.47, 0.6476, promoted=False),
]


def drawn_text(svg: str) -> list[str]:
    """Every text element's own text (not the tooltips' titles)."""
    root = ET.fromstring(svg)
    return [(e.text or "").strip() for e in root.iter(f"{SVG}text")]


def test_the_chart_text_holds_each_rounds_win_rate_interval_and_accuracy() -> None:
    text = drawn_text(trend_svg(ROUNDS))
    for point in ROUNDS:
        for value in (
            point.win_rate,
            point.win_rate_ci_low,
            point.win_rate_ci_high,
            point.sandbox_accuracy,
        ):
            if value is not None:
                assert share(value) in text, (point.round_id, share(value), text)
    assert text.count("0.648") == 2, "rounds 3 and 4 each write their accuracy"


def test_every_interval_is_drawn_as_an_opaque_bar_with_two_caps() -> None:
    root = ET.fromstring(trend_svg(ROUNDS))
    solid = [
        e
        for e in root.iter(f"{SVG}line")
        if e.get("stroke") == "#1d4ed8" and e.get("stroke-opacity") is None
    ]
    bars = [e for e in solid if e.get("x1") == e.get("x2")]
    caps = [
        e
        for e in solid
        if e.get("y1") == e.get("y2") and float(e.get("x2")) - float(e.get("x1")) == 14
    ]
    assert len(bars) == 3 and len(caps) == 6, "three rounds with an A/B, a bar and two caps each"


def test_a_long_night_labels_at_most_about_twelve_rounds_and_always_the_last() -> None:
    n_rounds = 40
    shown = [i for i in range(n_rounds) if labelled(i, n_rounds)]
    assert len(shown) <= MAX_LABELLED_ROUNDS + 1 and shown[-1] == n_rounds - 1
    assert all(labelled(i, MAX_LABELLED_ROUNDS) for i in range(MAX_LABELLED_ROUNDS))


def test_the_chart_fits_the_prefect_ui_at_1280_px() -> None:
    root = ET.fromstring(trend_svg(ROUNDS))
    assert int(root.get("width")) <= 760


def test_a_round_without_an_ab_breaks_the_line_and_a_promotion_gets_a_star() -> None:
    root = ET.fromstring(trend_svg(ROUNDS))
    win_rate_lines = [e for e in root.iter(f"{SVG}polyline") if e.get("stroke") == "#1d4ed8"]
    assert len(win_rate_lines) == 2, "the gap at round 2 splits the win-rate line"
    stars = [e for e in root.iter(f"{SVG}text") if e.findtext(f"{SVG}title") == "round 3: promoted"]
    assert len(stars) == 1


def test_a_chart_of_no_rounds_says_so_and_the_svg_travels_as_a_data_uri() -> None:
    assert "no rounds yet" in trend_svg([])
    assert svg_data_uri("<svg/>") == "data:image/svg+xml;base64,PHN2Zy8+"
