"""What the round report reads from the warehouse, and the kind of figure each column is."""

from __future__ import annotations

import math

import pandas as pd

from flywheel.config import Config
from flywheel.figures import UNKNOWN, count, duration, interval, known, measure, share, usd
from flywheel.warehouse.store import connect_warehouse, read_query

SHARE_COLUMNS = {
    "win_rate",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "lc_win_rate",
    "sandbox_accuracy",
    "general_collapse_share",
    "judge_checker_agreement",
    "judge_position_consistency",
    "rm_heldout_accuracy",
    "rl_winrate_last",
    "position_consistency",
    "parse_failure_rate",
    "first_position_win_share",
    "sandbox_accuracy_candidate",
    "sandbox_accuracy_champion",
    "objective_accuracy_candidate",
    "objective_accuracy_champion",
    "objective_max_drop",
}
OBJECTIVE_COLUMNS = [
    "objective_accuracy_candidate",
    "objective_accuracy_champion",
    "objective_outcome",
]


def round_summaries(config: Config) -> pd.DataFrame:
    """Every round's `v_round_summary` row, with its general-set figures (its NLL against the
    first champion's too, where that limit was set) and its A/B's wins, ties, losses,
    length-controlled win rate and objective guard (both accuracies, the outcome)."""
    with connect_warehouse(config.warehouse) as con:
        summaries = con.execute(read_query("report_round_summaries")).df()
    merged = with_general_checks(summaries, round_general_checks(config))
    merged = merged.merge(latest_evaluations(config, merged["round_id"]), on="round_id", how="left")
    merged["general_nll_ratio_first"] = ratio_to_first(merged)
    return merged.drop(columns="general_first_nll")


def ratio_to_first(rounds: pd.DataFrame) -> pd.Series:
    """Per round, the candidate's general NLL over the first champion's (None where either is
    missing)."""
    if "general_nll" not in rounds:
        return pd.Series([None] * len(rounds), index=rounds.index, dtype=object)
    first = pd.to_numeric(rounds["general_first_nll"], errors="coerce")
    nll = pd.to_numeric(rounds["general_nll"], errors="coerce")
    return nll / first.where(first > 0)


def latest_evaluations(config: Config, round_ids: pd.Series) -> pd.DataFrame:
    """Per round, its latest A/B's wins, ties, losses, length-controlled win rate, objective
    guard figures and the first champion's general NLL."""
    columns = [
        "round_id",
        "wins",
        "ties",
        "losses",
        "lc_win_rate",
        *OBJECTIVE_COLUMNS,
        "general_first_nll",
    ]
    latest = []
    with connect_warehouse(config.warehouse) as con:
        for round_id in round_ids:
            params = {"round_id": int(round_id)}
            rows = con.execute(read_query("report_round_evaluations"), params).df()
            if not rows.empty:
                latest.append(rows.sort_values("created_at").iloc[-1][columns])
    return pd.DataFrame(latest, columns=columns).astype({"round_id": "int64"})


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


def missing(value: object) -> bool:
    """Whether a cell holds nothing: None, pandas' NA or NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def flag(value: object) -> bool:
    """A boolean column's cell: True only for a true value (None, NA and NaN are False)."""
    return not missing(value) and bool(value)


def champion_after(row: pd.Series) -> str:
    """Who is champion after the round: `champion_after`, or the champion it started with when
    the round was not decided (failed, interrupted, running)."""
    after = row["champion_after"]
    return str(row["champion_before"] if missing(after) else after)


def decision_word(row: pd.Series) -> str:
    """`promoted`, `kept`, `kept (objective refused)` when the objective guard refused the
    candidate, `kept (no A/B)` for a stage that trained nothing, or the status of a round not
    decided (a round being reported is still `running` but already decided)."""
    if row["status"] not in ("done", "running") or missing(row["promoted"]):
        return str(row["status"])
    if flag(row["promoted"]):
        return "promoted"
    if known(row["win_rate"]) is None:
        return "kept (no A/B)"
    return "kept (objective refused)" if row.get("objective_outcome") == "refused" else "kept"


COUNT_COLUMNS = {"round_id", "wins", "ties", "losses", "excluded", "n_excluded"}
COUNT_SUFFIXES = ("_tokens",)


def cell_text(column: str, value: object) -> str:
    """A table cell as flywheel/figures.py writes the figure its column holds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column in SHARE_COLUMNS:
        return share(value)
    if column in COUNT_COLUMNS or column.startswith("n_") or column.endswith(COUNT_SUFFIXES):
        return count(value)
    if column == "cost_usd":
        return usd(value)
    if column == "wall_s":
        return duration(value)
    return measure(value) if known(value) is not None else UNKNOWN


def text_table(frame: pd.DataFrame, headers: dict[str, str] | None = None) -> str:
    """A markdown table, every figure written by the rule of its column (then the columns
    renamed by `headers`, when given)."""
    cells = frame.astype(object).apply(lambda col: [cell_text(col.name, v) for v in col])
    return cells.rename(columns=headers or {}).to_markdown(index=False)


def objective_line(evaluation: pd.Series) -> str | None:
    """The objective guard of one `evaluations` row as a summary bullet: outcome, which set,
    both accuracies with their intervals, the limit; None where the guard was off (or the row
    predates it)."""
    outcome = evaluation.get("objective_outcome")
    if missing(outcome) or outcome == "off":
        return None
    if outcome == "cannot_apply":
        return "- objective guard: cannot apply (no objective set could be measured)"
    source = (
        "the sandbox's checkers"
        if evaluation.get("objective_source") == "sandbox_checkers"
        else "evaluation.objective_set"
    )
    limit = evaluation.get("objective_max_drop")
    limit_words = "reported only" if known(limit) is None else f"limit {share(limit)} below"
    candidate, champion = (
        interval(
            evaluation.get(f"objective_accuracy_{side}"),
            evaluation.get(f"objective_accuracy_{side}_ci_low"),
            evaluation.get(f"objective_accuracy_{side}_ci_high"),
        )
        for side in ("candidate", "champion")
    )
    return (
        f"- objective guard: {outcome} ({source}, {count(evaluation.get('objective_n_items'))} "
        f"items): accuracy candidate {candidate} vs champion {champion}; {limit_words}"
    )
