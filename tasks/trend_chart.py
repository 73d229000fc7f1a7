"""The trend picture: one SVG of every round's held-out results, pure (rows in, SVG text out).

Each round shows the candidate's held-out win rate against the champion with its interval
(a bar with caps), the length-controlled win rate, and the champion's checker accuracy after
the round where the sandbox can check answers; a promoted round is marked with a star. The
values are written beside their points (the report embeds the SVG as a `data:` image, where
tooltips never show), rounded by flywheel/figures.py. Rounds without an A/B evaluation (a
skipped or failed stage) leave a gap. The legend sits above the plot, so the picture stays
560 px wide: the V2 UI's artifact column at 1280 px shows it at about its own size, the
V1 UI's a little larger, so its 12-13 px text stays readable in both.
"""

import base64
import math
from dataclasses import dataclass
from html import escape

from flywheel.figures import known, share

WIDTH_PX = 560
HEIGHT_PX = 380
MARGIN_PX = {"left": 44, "right": 12, "top": 72, "bottom": 40}
COLORS = {"win_rate": "#1d4ed8", "lc_win_rate": "#d97706", "accuracy": "#15803d"}
PROMOTED_COLOR = "#dc2626"
MAX_LABELLED_ROUNDS = 12  # beyond this, every k-th round and the last are labelled
HALO = 'stroke="white" stroke-width="3" paint-order="stroke"'  # text stays readable on lines


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


def _x(index: int, n_points: int) -> float:
    inner = WIDTH_PX - MARGIN_PX["left"] - MARGIN_PX["right"]
    return MARGIN_PX["left"] + (inner * (index + 0.5) / n_points)


def _y(value: float) -> float:
    inner = HEIGHT_PX - MARGIN_PX["top"] - MARGIN_PX["bottom"]
    return MARGIN_PX["top"] + inner * (1.0 - value)


def labelled(index: int, n_points: int) -> bool:
    """Whether round `index` gets its values written: all of them up to 12 rounds."""
    step = max(1, math.ceil(n_points / MAX_LABELLED_ROUNDS))
    return index % step == 0 or index == n_points - 1


def _series_path(points: list[TrendPoint], attribute: str) -> list[str]:
    """Polyline segments through the known values; an unknown value breaks the line."""
    segments: list[list[str]] = [[]]
    for i, point in enumerate(points):
        value = known(getattr(point, attribute))
        if value is None:
            segments.append([])
            continue
        segments[-1].append(f"{_x(i, len(points)):.1f},{_y(value):.1f}")
    return [" ".join(s) for s in segments if s]


def _axes(points: list[TrendPoint]) -> list[str]:
    left, right = MARGIN_PX["left"], WIDTH_PX - MARGIN_PX["right"]
    parts = []
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(value)
        style = 'stroke="#6b7280" stroke-dasharray="4 3"' if value == 0.5 else 'stroke="#e5e7eb"'
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" {style}/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2f}</text>')
    for i, point in enumerate(points):
        if labelled(i, len(points)):
            parts.append(
                f'<text x="{_x(i, len(points)):.1f}" y="{HEIGHT_PX - MARGIN_PX["bottom"] + 16}" '
                f'text-anchor="middle">{point.round_id}</text>'
            )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{HEIGHT_PX - 6}" text-anchor="middle">round</text>'
    )
    return parts


def _intervals(points: list[TrendPoint]) -> list[str]:
    """Each round's interval: a solid bar with caps, its bounds written at the caps."""
    parts = []
    for i, point in enumerate(points):
        low, high = known(point.win_rate_ci_low), known(point.win_rate_ci_high)
        if low is None or high is None:
            continue
        x, color = _x(i, len(points)), COLORS["win_rate"]
        stroke = f'stroke="{color}" stroke-width="2"'
        parts.append(
            f'<rect x="{x - 5:.1f}" y="{_y(high):.1f}" width="10" '
            f'height="{max(_y(low) - _y(high), 1):.1f}" fill="{color}" '
            'fill-opacity="0.15"/>'
        )
        parts.append(
            f'<line x1="{x:.1f}" y1="{_y(low):.1f}" x2="{x:.1f}" y2="{_y(high):.1f}" {stroke}/>'
        )
        for bound in (low, high):
            parts.append(
                f'<line x1="{x - 7:.1f}" y1="{_y(bound):.1f}" x2="{x + 7:.1f}" '
                f'y2="{_y(bound):.1f}" {stroke}/>'
            )
        if labelled(i, len(points)):
            parts += [
                _label(x + 10, _y(high) + 4, share(high), color, "start", size=12),
                _label(x + 10, _y(low) + 4, share(low), color, "start", size=12),
            ]
    return parts


def _label(x: float, y: float, text: str, color: str, anchor: str, size: int = 13) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{color}" '
        f'font-size="{size}" {HALO}>{escape(text)}</text>'
    )


def _series(points: list[TrendPoint], attribute: str, color: str, dashed: bool) -> list[str]:
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    parts = [
        f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        for path in _series_path(points, attribute)
    ]
    for i, point in enumerate(points):
        value = known(getattr(point, attribute))
        if value is not None:
            parts.append(
                f'<circle cx="{_x(i, len(points)):.1f}" cy="{_y(value):.1f}" r="4" '
                f'fill="{color}"><title>round {point.round_id} {attribute.replace("_", " ")} '
                f"{share(value)}</title></circle>"
            )
    return parts


def _value_labels(points: list[TrendPoint]) -> list[str]:
    """Left of each round: the win rate beside its point (bold), the accuracy beside its own."""
    parts = []
    for i, point in enumerate(points):
        if not labelled(i, len(points)):
            continue
        x = _x(i, len(points))
        win_rate, accuracy = known(point.win_rate), known(point.sandbox_accuracy)
        if win_rate is not None:
            label = _label(x - 10, _y(win_rate) + 4, share(win_rate), COLORS["win_rate"], "end")
            parts.append(label.replace("<text ", '<text font-weight="bold" ', 1))
        if accuracy is not None:
            parts.append(
                _label(
                    x - 10,
                    _accuracy_label_y(accuracy, win_rate),
                    share(accuracy),
                    COLORS["accuracy"],
                    "end",
                )
            )
    return parts


def _accuracy_label_y(accuracy: float, win_rate: float | None) -> float:
    """Below the accuracy's point, or above it when that is where the win rate's label is not
    (both labels sit left of the round)."""
    above = _y(accuracy) - 8
    below = _y(accuracy) + 16
    if win_rate is not None and abs(accuracy - win_rate) < 0.1:
        return above if accuracy >= win_rate else below
    return below if accuracy > 0.06 else above


def _promotions(points: list[TrendPoint]) -> list[str]:
    top = MARGIN_PX["top"] - 8
    return [
        f'<text x="{_x(i, len(points)):.1f}" y="{top}" text-anchor="middle" '
        f'fill="{PROMOTED_COLOR}" font-size="16">★<title>round {p.round_id}: promoted</title></text>'
        for i, p in enumerate(points)
        if p.promoted
    ]


def _legend() -> list[str]:
    """Two rows above the plot: the three series and the promotion star."""
    entries = [
        (COLORS["win_rate"], "", "win rate (bar: interval)"),
        (COLORS["lc_win_rate"], ' stroke-dasharray="6 4"', "length-controlled win rate"),
        (COLORS["accuracy"], "", "checker accuracy"),
    ]
    parts = []
    for i, (color, dash, label) in enumerate(entries):
        x, y = MARGIN_PX["left"] + 250 * (i % 2), 16 + 20 * (i // 2)
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 20}" y2="{y - 4}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        parts.append(f'<text x="{x + 26}" y="{y}" font-size="13">{escape(label)}</text>')
    x, y = MARGIN_PX["left"] + 250, 36
    parts.append(f'<text x="{x + 2}" y="{y + 1}" fill="{PROMOTED_COLOR}" font-size="16">★</text>')
    parts.append(f'<text x="{x + 26}" y="{y}" font-size="13">promoted</text>')
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
        *_legend(),
        *_axes(points),
        *_series(points, "lc_win_rate", COLORS["lc_win_rate"], dashed=True),
        *_series(points, "sandbox_accuracy", COLORS["accuracy"], dashed=False),
        *_intervals(points),
        *_series(points, "win_rate", COLORS["win_rate"], dashed=False),
        *_value_labels(points),
        *_promotions(points),
    ]
    return header + "".join(body) + "</svg>"


def svg_data_uri(svg: str) -> str:
    """The SVG as a base64 `data:` URI, for a markdown image."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
