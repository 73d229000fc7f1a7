"""The trend picture: one SVG of every round's held-out results, pure (rows in, SVG text out).

Each round shows the candidate's held-out win rate against the champion with its interval,
the length-controlled win rate, and the champion's checker accuracy after the round where
the sandbox can check answers; a promoted round is marked with a star. Rounds without an
A/B evaluation (a skipped or failed stage) leave a gap. The report embeds the SVG in a
markdown artifact as a `data:` image, which Prefect's UI renders.
"""

import base64
import math
from dataclasses import dataclass
from html import escape

WIDTH_PX = 760
HEIGHT_PX = 320
MARGIN_PX = {"left": 52, "right": 200, "top": 28, "bottom": 40}
COLORS = {"win_rate": "#2563eb", "lc_win_rate": "#f59e0b", "accuracy": "#16a34a"}
PROMOTED_COLOR = "#dc2626"


@dataclass(frozen=True)
class TrendPoint:
    """One round: every value is a share in [0, 1], or None when the round has none."""

    round_id: int
    win_rate: float | None
    win_rate_ci_low: float | None
    win_rate_ci_high: float | None
    lc_win_rate: float | None
    sandbox_accuracy: float | None
    promoted: bool


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _x(index: int, n_points: int) -> float:
    inner = WIDTH_PX - MARGIN_PX["left"] - MARGIN_PX["right"]
    return MARGIN_PX["left"] + (inner * (index + 0.5) / n_points)


def _y(share: float) -> float:
    inner = HEIGHT_PX - MARGIN_PX["top"] - MARGIN_PX["bottom"]
    return MARGIN_PX["top"] + inner * (1.0 - share)


def _series_path(points: list[TrendPoint], attribute: str) -> list[str]:
    """Polyline segments through the known values; an unknown value breaks the line."""
    segments: list[list[str]] = [[]]
    for i, point in enumerate(points):
        value = _known(getattr(point, attribute))
        if value is None:
            segments.append([])
            continue
        segments[-1].append(f"{_x(i, len(points)):.1f},{_y(value):.1f}")
    return [" ".join(s) for s in segments if s]


def _axes(points: list[TrendPoint]) -> list[str]:
    left, right = MARGIN_PX["left"], WIDTH_PX - MARGIN_PX["right"]
    parts = []
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(share)
        dash = ' stroke-dasharray="4 3"' if share == 0.5 else ""
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
            f'stroke="{"#6b7280" if share == 0.5 else "#e5e7eb"}"{dash}/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.2f}</text>')
    step = max(1, math.ceil(len(points) / 20))  # at most ~20 round labels
    for i, point in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            parts.append(
                f'<text x="{_x(i, len(points)):.1f}" y="{HEIGHT_PX - MARGIN_PX["bottom"] + 16}" '
                f'text-anchor="middle">{point.round_id}</text>'
            )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{HEIGHT_PX - 6}" text-anchor="middle">round</text>'
    )
    return parts


def _intervals(points: list[TrendPoint]) -> list[str]:
    parts = []
    for i, point in enumerate(points):
        low, high = _known(point.win_rate_ci_low), _known(point.win_rate_ci_high)
        if low is None or high is None:
            continue
        x = _x(i, len(points))
        parts.append(
            f'<line x1="{x:.1f}" y1="{_y(low):.1f}" x2="{x:.1f}" y2="{_y(high):.1f}" '
            f'stroke="{COLORS["win_rate"]}" stroke-width="6" stroke-opacity="0.25"/>'
        )
    return parts


def _series(points: list[TrendPoint], attribute: str, color: str, dashed: bool) -> list[str]:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    parts = [
        f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        for path in _series_path(points, attribute)
    ]
    for i, point in enumerate(points):
        value = _known(getattr(point, attribute))
        if value is not None:
            parts.append(
                f'<circle cx="{_x(i, len(points)):.1f}" cy="{_y(value):.1f}" r="3.5" '
                f'fill="{color}"><title>round {point.round_id}: {value:.3g}</title></circle>'
            )
    return parts


def _promotions(points: list[TrendPoint]) -> list[str]:
    top = MARGIN_PX["top"] - 10
    return [
        f'<text x="{_x(i, len(points)):.1f}" y="{top}" text-anchor="middle" '
        f'fill="{PROMOTED_COLOR}" font-size="16">★<title>round {p.round_id}: promoted</title></text>'
        for i, p in enumerate(points)
        if p.promoted
    ]


def _legend() -> list[str]:
    x = WIDTH_PX - MARGIN_PX["right"] + 16
    entries = [
        (COLORS["win_rate"], "", "win rate (bar: 95% CI)"),
        (COLORS["lc_win_rate"], ' stroke-dasharray="6 4"', "length-controlled win rate"),
        (COLORS["accuracy"], "", "checker accuracy"),
    ]
    parts = []
    for row, (color, dash, label) in enumerate(entries):
        y = MARGIN_PX["top"] + 14 + 20 * row
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 20}" y2="{y - 4}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 26}" y="{y}">{escape(label)}</text>')
    y = MARGIN_PX["top"] + 14 + 20 * len(entries)
    parts.append(f'<text x="{x + 4}" y="{y + 1}" fill="{PROMOTED_COLOR}" font-size="16">★</text>')
    parts.append(f'<text x="{x + 26}" y="{y}">promoted</text>')
    return parts


def trend_svg(points: list[TrendPoint]) -> str:
    """An SVG line chart of the rounds in `points` (in round order); a note when empty."""
    header = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" font-family="sans-serif" font-size="12" '
        f'fill="#111827"><rect width="100%" height="100%" fill="white"/>'
    )
    if not points:
        return header + '<text x="20" y="40">no rounds yet</text></svg>'
    body = [
        *_axes(points),
        *_intervals(points),
        *_series(points, "win_rate", COLORS["win_rate"], dashed=False),
        *_series(points, "lc_win_rate", COLORS["lc_win_rate"], dashed=True),
        *_series(points, "sandbox_accuracy", COLORS["accuracy"], dashed=False),
        *_promotions(points),
        *_legend(),
    ]
    return header + "".join(body) + "</svg>"


def svg_data_uri(svg: str) -> str:
    """The SVG as a base64 `data:` URI, for a markdown image."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
