"""Step 8 of the round: what the Prefect UI and the terminal show about each round.

Three artifacts per round: `round-metrics`, a narrow table an engineer reads without
scrolling (round, stage, win rate with its interval, W/T/L, accuracy where a checker exists,
decision, champion after); `round-metrics-detail`, every other per-round figure; and the
`round-trend` picture. Each round's own summary is `round-<n>-summary`
(tasks/round_summary.py). Every figure is rounded by flywheel/figures.py.
"""

from __future__ import annotations

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flywheel.config import Config
from flywheel.figures import interval, known, measure_value, share, share_value, wins_ties_losses
from flywheel.tasks.conversation_report import publish_conversation_report
from flywheel.tasks.report_data import (
    SHARE_COLUMNS,
    champion_after,
    decision_word,
    flag,
    round_general_checks,
    round_summaries,
    with_general_checks,
)
from flywheel.tasks.round_summary import round_markdown
from flywheel.tasks.terminal_table import terminal_table
from flywheel.tasks.trend_chart import TrendPoint, svg_data_uri, trend_svg

__all__ = [  # the report's own names, and those callers import from it
    "publish_round_report",
    "publish_round_summary",
    "round_general_checks",
    "round_markdown",
    "round_metrics_rows",
    "round_metrics_table",
    "round_summaries",
    "terminal_table",
    "trend_markdown",
    "with_general_checks",
]

ROUND_METRICS_KEY = "round-metrics"
ROUND_METRICS_DETAIL_KEY = "round-metrics-detail"
ROUND_TREND_KEY = "round-trend"
DETAIL_COLUMNS = [
    "round_id",
    "stage",
    "status",
    "champion_before",
    "champion_after",
    "win_rate",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "lc_win_rate",
    "wins",
    "ties",
    "losses",
    "sandbox_accuracy",
    "general_nll",
    "general_nll_ratio",
    "general_collapse_share",
    "general_nll_ratio_first",
    "objective_accuracy_candidate",
    "objective_accuracy_champion",
    "objective_outcome",
    "n_battles",
    "n_sft",
    "n_dpo",
    "n_rm",
    "wall_s",
]


def round_metrics_table(metrics: pd.DataFrame, ci: float) -> list[dict[str, str]]:
    """The narrow `round-metrics` rows: text cells, figures by flywheel/figures.py; the
    accuracy column only when some round's answers could be checked."""
    with_accuracy = metrics["sandbox_accuracy"].notna().any()
    rows = []
    for _, r in metrics.iterrows():
        row = {
            "round": str(r["round_id"]),
            "stage": str(r["stage"]),
            f"win rate [{ci:.0%} CI]": interval(
                r["win_rate"], r["win_rate_ci_low"], r["win_rate_ci_high"]
            ),
            "W/T/L": wins_ties_losses(r.get("wins"), r.get("ties"), r.get("losses")),
        }
        if with_accuracy:
            row["accuracy"] = share(r["sandbox_accuracy"])
        row["decision"] = decision_word(r)
        row["champion after"] = champion_after(r)
        rows.append(row)
    return rows


def _cell(column: str, value: object) -> object:
    """A JSON cell with the digits the text shows: shares to 3 decimals, other floats to 3
    significant digits, counts whole; None where unknown."""
    if isinstance(value, str) or isinstance(value, bool):
        return value
    number = known(value)
    if number is None:
        return None
    if column in SHARE_COLUMNS:
        return share_value(number)
    if column.startswith("n_") or column in ("round_id", "wins", "ties", "losses"):
        return int(number)
    return measure_value(number)


def round_metrics_rows(metrics: pd.DataFrame) -> list[dict]:
    """The detail table's rows: every column of `metrics`, numbers rounded by the rule."""
    return [
        {column: _cell(column, row[column]) for column in metrics.columns}
        for _, row in metrics.iterrows()
    ]


def trend_points(metrics: pd.DataFrame) -> list[TrendPoint]:
    return [
        TrendPoint(
            round_id=int(row["round_id"]),
            win_rate=known(row["win_rate"]),
            win_rate_ci_low=known(row["win_rate_ci_low"]),
            win_rate_ci_high=known(row["win_rate_ci_high"]),
            lc_win_rate=known(row["lc_win_rate"]),
            sandbox_accuracy=known(row["sandbox_accuracy"]),
            promoted=flag(row["promoted"]),
        )
        for _, row in metrics.iterrows()
    ]


def trend_markdown(metrics: pd.DataFrame) -> str:
    """The trend picture over all rounds, embedded as a `data:` SVG image, and its key."""
    points = trend_points(metrics)
    n_promoted = sum(p.promoted for p in points)
    return "\n".join(
        [
            f"# The flywheel over {len(points)} round{'s' if len(points) != 1 else ''} "
            f"({n_promoted} promoted)",
            "",
            f"![held-out win rate, length-controlled win rate and checker accuracy per round]"
            f"({svg_data_uri(trend_svg(points))})",
            "",
            "Blue: the candidate's win rate against the champion on the eval set, its interval "
            "as a bar with caps, the bounds written beside it (above the dashed 0.5 line the "
            "candidate was better). Orange, dashed: the length-controlled win rate. Green: the "
            "champion's checker accuracy on the eval set after the round, where the sandbox "
            "can check answers. Red star: promoted. A gap: no A/B that round (stage skipped "
            "or failed).",
        ]
    )


def publish_round_summary(config: Config, round_id: int) -> None:
    """The round's markdown summary (a failed round's says so, with its cause)."""
    create_markdown_artifact(
        markdown=round_markdown(config, round_id),
        key=f"round-{round_id}-summary",
        description=f"round {round_id} summary",
    )


def publish_round_report(config: Config, round_id: int) -> None:
    """New versions of the keyed `round-metrics` and `round-metrics-detail` tables and the
    `round-trend` picture, and the round's markdown summary."""
    metrics = round_summaries(config)
    create_table_artifact(
        table=round_metrics_table(metrics, config.evaluation.ci),
        key=ROUND_METRICS_KEY,
        description=f"after round {round_id}; every other figure: `{ROUND_METRICS_DETAIL_KEY}`",
    )
    create_table_artifact(
        table=round_metrics_rows(metrics[[c for c in DETAIL_COLUMNS if c in metrics]]),
        key=ROUND_METRICS_DETAIL_KEY,
        description=f"every per-round figure after round {round_id}",
    )
    create_markdown_artifact(
        markdown=trend_markdown(metrics),
        key=ROUND_TREND_KEY,
        description=f"the trend after round {round_id}",
    )
    publish_round_summary(config, round_id)
    publish_conversation_report(config, round_id)  # nothing for a round without conversations
