"""Every figure flywheel shows, rounded once by one rule: logs, Prefect artifacts, the terminal.

The rule, by what a figure is:

| kind | how it is shown | example |
| --- | --- | --- |
| share (a rate in [0, 1]: win rate, accuracy, consistency, parse failures, collapse) | 3 decimals, never a percentage | `0.634` |
| interval (a share and its confidence interval) | the share, then its bounds in brackets | `0.634 [0.611, 0.657]` |
| count (battles, games, calls, tokens, rows) | a whole number, thousands separated by commas | `1,225` |
| measure (anything else: a loss, an NLL, a ratio, a rating) | 3 significant digits; 100 and above as a whole number | `2.52`, `0.0123`, `1012` |
| cost | US dollars, 4 decimals | `$0.0123` |
| duration | whole seconds | `85 s` |

A figure that is not known (None, NaN) is shown as `-`. Tables that keep numbers (the raw
data of a Prefect table artifact) hold the same digits as the text: `share_value`,
`measure_value`. Format here, never with an inline format spec, so that the same figure
shows the same digits in every view.
"""

from __future__ import annotations

import math
from numbers import Real

UNKNOWN = "-"
SHARE_DECIMALS = 3
MEASURE_DIGITS = 3
WHOLE_FROM = 100.0  # measures at or above this are shown as whole numbers


def known(value: object) -> float | None:
    """The value as a float, or None when it is missing (None, NaN, pandas' NA)."""
    if value is None or isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def share(value: object) -> str:
    """A rate in [0, 1] to 3 decimals: 0.63086 -> `0.631`."""
    number = known(value)
    return UNKNOWN if number is None else f"{number:.{SHARE_DECIMALS}f}"


def interval(value: object, low: object, high: object) -> str:
    """A share and its interval in one cell: `0.634 [0.611, 0.657]` (`-` when unknown)."""
    if known(value) is None:
        return UNKNOWN
    if known(low) is None or known(high) is None:
        return share(value)
    return f"{share(value)} [{share(low)}, {share(high)}]"


def count(value: object) -> str:
    """A whole number with thousands separated: 1225 -> `1,225`."""
    number = known(value)
    return UNKNOWN if number is None else f"{round(number):,}"


def measure(value: object) -> str:
    """3 significant digits, whole from 100 up: 2.5183 -> `2.52`, 1012.4 -> `1012`."""
    number = known(value)
    if number is None:
        return UNKNOWN
    if not math.isfinite(number):
        return str(number)
    if abs(number) >= WHOLE_FROM:
        return f"{round(number)}"
    return f"{number:#.{MEASURE_DIGITS}g}".rstrip(".")


def usd(value: object) -> str:
    """A cost in dollars to 4 decimals: `$0.0123`."""
    number = known(value)
    return UNKNOWN if number is None else f"${number:.4f}"


def duration(value: object) -> str:
    """Seconds, whole: 84.6 -> `85 s`."""
    number = known(value)
    return UNKNOWN if number is None else f"{number:.0f} s"


def wins_ties_losses(wins: object, ties: object, losses: object) -> str:
    """`71/304/18` (`-` when the round has no A/B)."""
    if any(known(v) is None for v in (wins, ties, losses)):
        return UNKNOWN
    return f"{count(wins)}/{count(ties)}/{count(losses)}"


def share_value(value: object) -> float | None:
    """The number `share` shows, for tables that keep numbers."""
    number = known(value)
    return None if number is None else round(number, SHARE_DECIMALS)


def measure_value(value: object) -> float | None:
    """The number `measure` shows, for tables that keep numbers."""
    number = known(value)
    return None if number is None or not math.isfinite(number) else float(measure(number))
