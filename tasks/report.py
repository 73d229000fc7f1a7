"""Step 8 of the round: what the Prefect UI and the terminal show about each round."""

from __future__ import annotations

import math

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flywheel.config import Config
from flywheel.tasks.trend_chart import TrendPoint, svg_data_uri, trend_svg
from flywheel.warehouse.store import connect_warehouse, read_query

ROUND_METRICS_KEY = "round-metrics"
ROUND_TREND_KEY = "round-trend"
SIGNIFICANT_DIGITS = 3


def round_summaries(config: Config) -> pd.DataFrame:
    with connect_warehouse(config.warehouse) as con:
        summaries = con.execute(read_query("report_round_summaries")).df()
    return with_general_checks(summaries, round_general_checks(config))


def round_metrics(config: Config) -> pd.DataFrame:
    """`round_metrics.sql`: one row per round, the A/B result and decision first, then the
    candidate's general-set figures."""
    with connect_warehouse(config.warehouse) as con:
        metrics = con.execute(read_query("round_metrics")).df()
    return with_general_checks(metrics, round_general_checks(config))


def round_general_checks(config: Config) -> pd.DataFrame:
    """`round_general_checks.sql`: per round, the candidate's general-set NLL, its ratio to the
    champion's and its collapse share."""
    with connect_warehouse(config.warehouse) as con:
        return con.execute(read_query("round_general_checks")).df()


def with_general_checks(rounds: pd.DataFrame, general: pd.DataFrame) -> pd.DataFrame:
    """`rounds` with the general-set columns right after `sandbox_accuracy` (empty where the
    round's candidate was not measured)."""
    merged = rounds.merge(general, on="round_id", how="left")
    added = [c for c in general.columns if c != "round_id"]
    columns = list(rounds.columns)
    at = columns.index("sandbox_accuracy") + 1 if "sandbox_accuracy" in columns else len(columns)
    return merged[columns[:at] + added + columns[at:]]


def _clean(value: object) -> object:
    """JSON-friendly cell: NaN and NA become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def significant(value: object, digits: int = SIGNIFICANT_DIGITS) -> object:
    """A float rounded to `digits` significant digits (0.5263157 -> 0.526); others unchanged."""
    if not isinstance(value, float) or value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def round_metrics_rows(metrics: pd.DataFrame) -> list[dict]:
    """The table artifact's rows: every float to 3 significant digits."""
    return [
        {column: significant(_clean(row[column])) for column in metrics.columns}
        for _, row in metrics.iterrows()
    ]


def trend_points(metrics: pd.DataFrame) -> list[TrendPoint]:
    return [
        TrendPoint(
            round_id=int(row["round_id"]),
            win_rate=_clean(row["win_rate"]),
            win_rate_ci_low=_clean(row["win_rate_ci_low"]),
            win_rate_ci_high=_clean(row["win_rate_ci_high"]),
            lc_win_rate=_clean(row["lc_win_rate"]),
            sandbox_accuracy=_clean(row["sandbox_accuracy"]),
            promoted=bool(_clean(row["promoted"])),
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
            "Blue: the candidate's held-out win rate against the champion, with its 95% "
            "interval as a bar (above the dashed 0.5 line the candidate was better). Orange, "
            "dashed: the length-controlled win rate. Green: the champion's checker accuracy "
            "after the round, where the sandbox can check answers. Red star: promoted. A gap: "
            "no A/B that round (stage skipped or failed).",
        ]
    )


def _markdown_table(frame: pd.DataFrame) -> str:
    """A markdown table with every float to 3 significant digits."""
    return frame.map(significant).to_markdown(index=False)


def _fmt(value: object, pattern: str = "{:.3f}") -> str:
    cleaned = _clean(value)
    return "-" if cleaned is None else pattern.format(cleaned)


def _unselected_note(n_unselected: float) -> str:
    """` (and N left unjudged by the judge budget)` when judge.selection left battles out."""
    if not n_unselected:
        return ""
    return f" (and {n_unselected:.0f} left unjudged by the judge budget, judge.selection)"


def round_markdown(config: Config, round_id: int) -> str:
    """Decision and reason, win rates per reference, mined counts, training, judge audit, cost."""
    with connect_warehouse(config.warehouse) as con:
        params = {"round_id": round_id}
        summary = con.execute(read_query("report_round_summary"), params).df()
        rnd = con.execute(read_query("report_round_decision"), params).fetchone()
        training = con.execute(read_query("report_round_training"), params).df()
        evaluation = con.execute(read_query("report_round_evaluations"), params).df()
        win_rates = con.execute(read_query("round_win_rates"), params).df()
        costs = con.execute(read_query("round_costs"), params).df()
        ratings = con.execute(read_query("report_round_ratings"), params).df()
    row = summary.iloc[0]
    lines = [
        f"# Round {round_id}: {row['stage']}",
        "",
        _decision_line(row, rnd[0] if rnd else None),
        "",
        f"Mined: {_fmt(row['n_sft'], '{:.0f}')} SFT, {_fmt(row['n_dpo'], '{:.0f}')} DPO, "
        f"{_fmt(row['n_rm'], '{:.0f}')} RM from {_fmt(row['n_battles'], '{:.0f}')} battles"
        + _unselected_note(row["n_battles_unselected"])
        + "; "
        f"sandbox accuracy of the champion after the round: {_fmt(row['sandbox_accuracy'], '{:.1%}')}"
        + _without_target_note(rnd[1] if rnd else None),
        "",
        f"Judge: {_fmt(row['n_decisive'], '{:.0f}')} decisive battles, "
        f"{_fmt(row['n_decisive_without_gap'], '{:.0f}')} of them without a score gap (their "
        f"games lost the scores, so mining by gap skips them); "
        f"{_fmt(row['n_judge_prompts_cut'], '{:.0f}')} conversations cut to the judge's context; "
        f"agreement with the checker where exactly one answer is right "
        f"{_fmt(row['judge_checker_agreement'])}, position consistency "
        f"{_fmt(row['judge_position_consistency'])}",
        "",
        "## Champion vs each reference (train battles)",
        _markdown_table(win_rates) if not win_rates.empty else "(no battles)",
        "",
        "## Training",
        _markdown_table(training) if not training.empty else "(no training run)",
    ]
    if not evaluation.empty:
        e = evaluation.iloc[0]
        lines += [
            "",
            "## A/B evaluation and judge audit",
            f"win rate {_fmt(e['win_rate'])} [{_fmt(e['win_rate_ci_low'])}, {_fmt(e['win_rate_ci_high'])}], "
            f"length-controlled {_fmt(e['lc_win_rate'])}; wins/ties/losses {e['wins']}/{e['ties']}/{e['losses']} "
            f"({e['n_excluded']} excluded); mean length candidate {_fmt(e['mean_len_candidate'], '{:.0f}')} vs "
            f"champion {_fmt(e['mean_len_champion'], '{:.0f}')} chars",
            f"judge: position consistency {_fmt(e['position_consistency'])}, parse failures "
            f"{_fmt(e['parse_failure_rate'])}, first-position win share {_fmt(e['first_position_win_share'])}",
            _general_line(config, round_id),
            "",
            "## Ratings (Bradley-Terry, Elo scale)",
            ratings.to_markdown(index=False, floatfmt=".0f"),
        ]
    lines += [
        "",
        "## Tokens and cost",
        _markdown_table(costs) if not costs.empty else "(no calls)",
    ]
    return "\n".join(lines)


def _general_line(config: Config, round_id: int) -> str:
    """The candidate on the general set: what it still knows outside the sandbox's skills."""
    general = round_general_checks(config)
    rows = general[general["round_id"] == round_id]
    if rows.empty:
        return "general set: not measured"
    g = rows.iloc[0]
    return (
        f"general set: candidate NLL {_fmt(g['general_nll'])} "
        f"({_fmt(g['general_nll_ratio'], '{:.3f}')}x the champion's), "
        f"{_fmt(g['general_collapse_share'], '{:.1%}')} of its replies collapse into the "
        "answer format"
    )


def _without_target_note(n_without_target: int | None) -> str:
    """The SFT battles the refine rule could not mine (a failed or empty correction)."""
    if not n_without_target:
        return ""
    return (
        f"; **{n_without_target} SFT battles have no example**: their refine call failed or "
        "replied with nothing (`flywheel run --retry-failed` asks again)"
    )


def _decision_line(row: pd.Series, reason: str | None) -> str:
    if row["status"] in ("failed", "interrupted"):
        return (
            f"**Round {row['status']}:** {row['error']}. The champion stays "
            f"{row['champion_before']}; the next `flywheel run` resumes this round."
        )
    moved = "promoted" if row["promoted"] else "kept"
    return f"**Decision:** {moved} {row['champion_after']} — {reason or ''}"


def publish_round_summary(config: Config, round_id: int) -> None:
    """The round's markdown summary (a failed round's says so, with its cause)."""
    create_markdown_artifact(
        markdown=round_markdown(config, round_id),
        key=f"round-{round_id}-summary",
        description=f"round {round_id} summary",
    )


def publish_round_report(config: Config, round_id: int) -> None:
    """New versions of the keyed `round-metrics` table and `round-trend` picture, and the
    round's markdown summary."""
    metrics = round_metrics(config)
    create_table_artifact(
        table=round_metrics_rows(metrics),
        key=ROUND_METRICS_KEY,
        description=f"after round {round_id}",
    )
    create_markdown_artifact(
        markdown=trend_markdown(metrics),
        key=ROUND_TREND_KEY,
        description=f"the trend after round {round_id}",
    )
    publish_round_summary(config, round_id)


def terminal_table(summaries: pd.DataFrame) -> str:
    """The per-round table `flywheel run` prints."""
    lines = [
        f"{'round':>5} {'stage':<6} {'battles':>7} {'sft':>5} {'dpo':>5} {'rm':>5} "
        f"{'win rate [95% CI]':<22} {'promoted':<8} {'accuracy':>8} {'gen NLL':>7} "
        f"{'x champ':>7} {'collapse':>8} {'wall s':>7}"
    ]
    for _, r in summaries.iterrows():
        win = (
            (
                f"{_fmt(r['win_rate'], '{:.2f}')} [{_fmt(r['win_rate_ci_low'], '{:.2f}')}, "
                f"{_fmt(r['win_rate_ci_high'], '{:.2f}')}]"
            )
            if _clean(r["win_rate"]) is not None
            else "-"
        )
        promoted = (
            {True: "yes", False: "no"}.get(_clean(r["promoted"]), "-")
            if r["status"] == "done"
            else str(r["status"]).upper()
        )
        lines.append(
            f"{r['round_id']:>5} {r['stage']:<6} {_fmt(r['n_battles'], '{:.0f}'):>7} "
            f"{_fmt(r['n_sft'], '{:.0f}'):>5} {_fmt(r['n_dpo'], '{:.0f}'):>5} {_fmt(r['n_rm'], '{:.0f}'):>5} "
            f"{win:<22} {promoted:<8} {_fmt(r['sandbox_accuracy'], '{:.1%}'):>8} "
            f"{_fmt(r['general_nll']):>7} {_fmt(r['general_nll_ratio'], '{:.3f}'):>7} "
            f"{_fmt(r['general_collapse_share'], '{:.1%}'):>8} {_fmt(r['wall_s'], '{:.0f}'):>7}"
        )
    lines += [
        f"round {r['round_id']} {r['status']}: {r['error']}"
        for _, r in summaries.iterrows()
        if r["status"] != "done" and _clean(r["error"]) is not None
    ]
    return "\n".join(lines)
