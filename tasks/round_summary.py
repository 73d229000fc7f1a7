"""The round's summary artifact (`round-<n>-summary`): the decision first, then the A/B on the
eval set, the judge on each set, what was mined from the train battles, training, ratings and
cost. Every figure says which set it covers and is written by flywheel/figures.py; where two
counts differ (games judged, judge calls paid) the summary says why.
"""

from __future__ import annotations

import pandas as pd

from flywheel.config import Config
from flywheel.figures import count, interval, known, measure, share, wins_ties_losses
from flywheel.tasks.report_data import objective_line, round_general_checks, text_table
from flywheel.warehouse.store import connect_warehouse, read_query


def round_markdown(config: Config, round_id: int) -> str:
    """Decision and reason, the A/B, the judge, mined counts, training, ratings, cost."""
    with connect_warehouse(config.warehouse) as con:
        params = {"round_id": round_id}
        summary = con.execute(read_query("report_round_summary"), params).df()
        rnd = con.execute(read_query("report_round_decision"), params).fetchone()
        training = con.execute(read_query("report_round_training"), params).df()
        evaluation = con.execute(read_query("report_round_evaluations"), params).df()
        win_rates = con.execute(read_query("round_win_rates"), params).df()
        costs = con.execute(read_query("round_costs"), params).df()
        ratings = con.execute(read_query("report_round_ratings"), params).df()
        games = con.execute(
            read_query("round_games"), {"round_id": round_id, "judge": config.judge.name}
        ).df()
    row = summary.iloc[0]
    lines = [
        f"# Round {round_id}: {row['stage']}",
        "",
        _decision_line(row, rnd[0] if rnd else None),
    ]
    if not evaluation.empty:
        e = evaluation.sort_values("created_at").iloc[-1]
        lines += ["", "## A/B on the eval set (candidate vs champion)", *_ab_lines(config, e)]
        lines.append(_general_line(config, round_id))
    lines += ["", "## Judge", *_judge_lines(row, evaluation)]
    lines.append(_calls_line(config, len(games), costs))
    lines += [
        "",
        "## Mined from the train battles",
        _mined_line(row, rnd[1] if rnd else None),
        "",
        "Champion vs each reference (train battles, ties count half):",
        "",
        text_table(win_rates) if not win_rates.empty else "(no battles)",
        "",
        "## Training (loss: the stage's training loss on the mined rows, first -> last step)",
        text_table(training) if not training.empty else "(no training run)",
    ]
    if not ratings.empty:
        lines += ["", "## Ratings (Bradley-Terry, Elo scale, every battle of the round)"]
        lines.append(text_table(ratings))
    lines += ["", "## Calls, tokens and cost paid this round", _costs_table(costs)]
    return "\n".join(lines)


def _ab_lines(config: Config, e: pd.Series) -> list[str]:
    """The A/B figures, each once, with the accuracy of both sides where a checker exists."""
    excluded = f" ({count(e['n_excluded'])} excluded)" if known(e["n_excluded"]) else ""
    lines = [
        f"- win rate {interval(e['win_rate'], e['win_rate_ci_low'], e['win_rate_ci_high'])} "
        f"({config.evaluation.ci:.0%} interval) over {count(e['n_prompts'])} prompts; "
        f"length-controlled {share(e['lc_win_rate'])}",
        f"- wins/ties/losses {wins_ties_losses(e['wins'], e['ties'], e['losses'])}{excluded}",
        f"- mean answer length: candidate {count(e['mean_len_candidate'])} vs champion "
        f"{count(e['mean_len_champion'])} characters",
    ]
    if known(e["sandbox_accuracy_candidate"]) is not None:
        lines.append(
            f"- checker accuracy: candidate {share(e['sandbox_accuracy_candidate'])}, "
            f"champion {share(e['sandbox_accuracy_champion'])}"
        )
    objective = objective_line(e)
    if objective is not None:
        lines.append(objective)
    return lines


def _judge_lines(row: pd.Series, evaluation: pd.DataFrame) -> list[str]:
    """The judge on the train battles (from the battles) and over all the round's games."""
    lines = [
        f"- train battles: {count(row['n_decisive'])} decisive, "
        f"{count(row['n_decisive_without_gap'])} of them without a score gap (mining by gap "
        f"skips them); {count(row['n_judge_prompts_cut'])} conversations cut to the judge's "
        f"context; position consistency {share(row['judge_position_consistency'])}; agreement "
        f"with the checker where exactly one answer is right "
        f"{share(row['judge_checker_agreement'])}"
    ]
    if not evaluation.empty:
        e = evaluation.sort_values("created_at").iloc[-1]
        lines.append(
            f"- audit over every game of the round (train battles and eval): position "
            f"consistency {share(e['position_consistency'])}, parse failures "
            f"{share(e['parse_failure_rate'])}, first-position wins "
            f"{share(e['first_position_win_share'])}"
        )
    return lines


def _calls_line(config: Config, n_games: int, costs: pd.DataFrame) -> str:
    """Games judged vs judge calls paid this round, and why they differ."""
    judge_rows = costs[costs["endpoint"] == config.judge.name]
    n_calls = int(judge_rows["n_calls"].sum()) if not judge_rows.empty else 0
    line = f"- {count(n_games)} games judged by {config.judge.name} this round (train and eval)"
    if n_calls >= n_games:
        return f"{line}; {count(n_calls)} judge calls paid"
    return (
        f"{line}; {count(n_calls)} judge calls paid (the cost table below): the other "
        f"{count(n_games - n_calls)} games were answered from the call cache (a request "
        "identical to one already paid, earlier in the round or in an earlier round)"
    )


def _mined_line(row: pd.Series, n_without_target: int | None) -> str:
    return (
        f"{count(row['n_sft'])} SFT, {count(row['n_dpo'])} DPO, {count(row['n_rm'])} RM rows "
        f"from {count(row['n_battles'])} battles"
        + _unselected_note(row["n_battles_unselected"])
        + _without_target_note(n_without_target)
    )


def _costs_table(costs: pd.DataFrame) -> str:
    if costs.empty:
        return "(no calls)"
    return text_table(costs.rename(columns={"n_calls": "n_calls_paid"}))


def _general_line(config: Config, round_id: int) -> str:
    """The candidate on the general set: what it still knows outside the sandbox's skills."""
    general = round_general_checks(config)
    rows = general[general["round_id"] == round_id]
    if rows.empty:
        return "- general set: not measured"
    g = rows.iloc[0]
    return (
        f"- general set: candidate NLL {measure(g['general_nll'])} "
        f"({measure(g['general_nll_ratio'])}x the champion's), collapse share "
        f"{share(g['general_collapse_share'])} (replies collapsing into the answer format)"
    )


def _unselected_note(n_unselected: object) -> str:
    """` (and N left unjudged by the judge budget)` when judge.selection left battles out."""
    if not known(n_unselected):
        return ""
    return f" (and {count(n_unselected)} left unjudged by the judge budget, judge.selection)"


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
    return f"**Decision:** {moved} {row['champion_after']}: {reason or ''}"
