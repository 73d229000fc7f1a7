"""Step 8 of the round: what the Prefect UI and the terminal show about each round."""

from __future__ import annotations

import math

import pandas as pd
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flywheel.config import Config
from flywheel.warehouse.store import connect_warehouse, read_query

ROUND_METRICS_KEY = "round-metrics"
ROUND_METRICS_COLUMNS = [
    "round_id",
    "stage",
    "champion_before",
    "champion_after",
    "promoted",
    "n_battles",
    "n_sft",
    "n_dpo",
    "n_rm",
    "win_rate",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "sandbox_accuracy",
    "wall_s",
]


def round_summaries(config: Config) -> pd.DataFrame:
    with connect_warehouse(config.warehouse) as con:
        return con.execute("select * from v_round_summary").df()


def _clean(value: object) -> object:
    """JSON-friendly cell: NaN and NA become None."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def round_metrics_rows(summaries: pd.DataFrame) -> list[dict]:
    return [{c: _clean(row[c]) for c in ROUND_METRICS_COLUMNS} for _, row in summaries.iterrows()]


def _fmt(value: object, pattern: str = "{:.3f}") -> str:
    cleaned = _clean(value)
    return "-" if cleaned is None else pattern.format(cleaned)


def round_markdown(config: Config, round_id: int) -> str:
    """Decision and reason, win rates per reference, mined counts, training, judge audit, cost."""
    with connect_warehouse(config.warehouse) as con:
        summary = con.execute("select * from v_round_summary where round_id = ?", [round_id]).df()
        rnd = con.execute(
            "select decision_reason from rounds where round_id = ?", [round_id]
        ).fetchone()
        training = con.execute(
            "select stage, status, reason, n_examples, first_loss, last_loss, wall_s "
            "from training_runs where round_id = ?",
            [round_id],
        ).df()
        evaluation = con.execute("select * from evaluations where round_id = ?", [round_id]).df()
        win_rates = con.execute(read_query("round_win_rates"), {"round_id": round_id}).df()
        costs = con.execute(read_query("round_costs"), {"round_id": round_id}).df()
        ratings = con.execute(
            "select model_id, rating, ci_low, ci_high, n_battles from ratings where round_id = ? "
            "order by rating desc",
            [round_id],
        ).df()
    row = summary.iloc[0]
    lines = [
        f"# Round {round_id}: {row['stage']}",
        "",
        f"**Decision:** {'promoted ' + str(row['champion_after']) if row['promoted'] else 'kept ' + str(row['champion_after'])}"
        f" — {rnd[0] if rnd else ''}",
        "",
        f"Mined: {_fmt(row['n_sft'], '{:.0f}')} SFT, {_fmt(row['n_dpo'], '{:.0f}')} DPO, "
        f"{_fmt(row['n_rm'], '{:.0f}')} RM from {_fmt(row['n_battles'], '{:.0f}')} battles; "
        f"sandbox accuracy of the champion after the round: {_fmt(row['sandbox_accuracy'], '{:.1%}')}",
        "",
        "## Champion vs each reference (train battles)",
        win_rates.to_markdown(index=False) if not win_rates.empty else "(no battles)",
        "",
        "## Training",
        training.to_markdown(index=False) if not training.empty else "(no training run)",
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
            "",
            "## Ratings (Bradley-Terry, Elo scale)",
            ratings.to_markdown(index=False),
        ]
    lines += [
        "",
        "## Tokens and cost",
        costs.to_markdown(index=False) if not costs.empty else "(no calls)",
    ]
    return "\n".join(lines)


def publish_round_report(config: Config, round_id: int) -> None:
    """A new version of the keyed `round-metrics` table (its history shows the trend) and the
    round's markdown summary."""
    rows = round_metrics_rows(round_summaries(config))
    create_table_artifact(table=rows, key=ROUND_METRICS_KEY, description=f"after round {round_id}")
    create_markdown_artifact(
        markdown=round_markdown(config, round_id),
        key=f"round-{round_id}-summary",
        description=f"round {round_id} summary",
    )


def terminal_table(summaries: pd.DataFrame) -> str:
    """The per-round table `flywheel run` prints."""
    lines = [
        f"{'round':>5} {'stage':<6} {'battles':>7} {'sft':>5} {'dpo':>5} {'rm':>5} "
        f"{'win rate [95% CI]':<22} {'promoted':<8} {'accuracy':>8} {'wall s':>7}"
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
            f"{win:<22} {promoted:<8} {_fmt(r['sandbox_accuracy'], '{:.1%}'):>8} {_fmt(r['wall_s'], '{:.0f}'):>7}"
        )
    lines += [
        f"round {r['round_id']} {r['status']}: {r['error']}"
        for _, r in summaries.iterrows()
        if r["status"] != "done" and _clean(r["error"]) is not None
    ]
    return "\n".join(lines)
