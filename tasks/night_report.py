"""The night in one place: what the parent `flywheel` run did, as its closing log line and its
`flywheel-night` artifact. Rounds run, promotions and the champion now, the win-rate and
accuracy trend, the cost (judge calls, tokens, dollars, wall time), and what needs a look
(unfinished rounds, failed calls, unparsed games, battles mining could not rank). Figures by
flywheel/figures.py, the same digits as round-metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect.artifacts import create_markdown_artifact

from flywheel.config import Config
from flywheel.figures import count, duration, interval, known, share, usd
from flywheel.tasks.report import round_metrics_table
from flywheel.tasks.report_data import (
    champion_after,
    decision_word,
    round_summaries,
    text_table,
)
from flywheel.warehouse.store import connect_warehouse, read_query

NIGHT_KEY = "flywheel-night"


@dataclass(frozen=True)
class NightCost:
    """What the night's rounds paid: judge calls, every call's tokens and cost, wall time;
    `per_round` one row per round (round_id, n_judge_calls, n_calls, n_failed_calls,
    n_tokens, cost_usd, wall_s)."""

    per_round: pd.DataFrame

    def total(self, column: str) -> float:
        return float(self.per_round[column].sum()) if not self.per_round.empty else 0.0

    @property
    def n_judge_calls(self) -> int:
        return int(self.total("n_judge_calls"))

    @property
    def n_calls(self) -> int:
        return int(self.total("n_calls"))

    @property
    def n_failed_calls(self) -> int:
        return int(self.total("n_failed_calls"))

    @property
    def n_tokens(self) -> int:
        return int(self.total("n_tokens"))

    @property
    def cost_usd(self) -> float:
        return self.total("cost_usd")

    @property
    def wall_s(self) -> float:
        return self.total("wall_s")


def night_cost(config: Config, rounds: pd.DataFrame) -> NightCost:
    """Each round's calls paid (`round_costs.sql`, per endpoint) summed, the judge's apart."""
    judges = {m.name for m in config.judge.members} | {config.judge.name}
    per_round = []
    with connect_warehouse(config.warehouse) as con:
        for _, r in rounds.iterrows():
            params = {"round_id": int(r["round_id"])}
            costs = con.execute(read_query("round_costs"), params).df()
            per_round.append(
                {
                    "round_id": int(r["round_id"]),
                    "n_judge_calls": int(costs[costs["endpoint"].isin(judges)]["n_calls"].sum()),
                    "n_calls": int(costs["n_calls"].sum()),
                    "n_failed_calls": int(costs["n_errors"].sum()),
                    "n_tokens": int(
                        costs["prompt_tokens"].sum() + costs["completion_tokens"].sum()
                    ),
                    "cost_usd": float(costs["cost_usd"].sum()),
                    "wall_s": 0.0 if known(r["wall_s"]) is None else float(r["wall_s"]),
                }
            )
    return NightCost(pd.DataFrame(per_round, columns=COST_COLUMNS))


COST_HEADERS = {
    "round_id": "round",
    "n_judge_calls": "judge calls paid",
    "n_calls": "calls paid",
    "n_failed_calls": "failed calls",
    "n_tokens": "tokens",
    "cost_usd": "cost",
    "wall_s": "wall time",
}
COST_COLUMNS = [
    "round_id",
    "n_judge_calls",
    "n_calls",
    "n_failed_calls",
    "n_tokens",
    "cost_usd",
    "wall_s",
]


def needs_a_look(rounds: pd.DataFrame, cost: NightCost) -> list[str]:
    """One line per thing an engineer should open: unfinished rounds, stages that trained
    nothing, battles mining could not rank, failed calls."""
    items = []
    for _, r in rounds.iterrows():
        rid = r["round_id"]
        if r["status"] != "done":
            items.append(f"round {rid} {r['status']}: {r['error']}")
        elif known(r["win_rate"]) is None:
            items.append(f"round {rid}: no A/B (the {r['stage']} stage trained no candidate)")
        if known(r["n_decisive_without_gap"]):
            items.append(
                f"round {rid}: {count(r['n_decisive_without_gap'])} of "
                f"{count(r['n_decisive'])} decisive train battles without a score gap"
            )
    if cost.n_failed_calls:
        items.append(
            f"{count(cost.n_failed_calls)} calls failed after their retries (llm_calls.error; "
            "`flywheel run --retry-failed` asks again)"
        )
    return items


def _trend(rounds: pd.DataFrame, column: str) -> str:
    values = [share(v) for v in rounds[column]]
    return " -> ".join(values) if any(known(v) is not None for v in rounds[column]) else "-"


def _span(rounds: pd.DataFrame) -> str:
    ids = [int(r) for r in rounds["round_id"]]
    return f"round {ids[0]}" if len(ids) == 1 else f"rounds {ids[0]}-{ids[-1]}"


def night_line(rounds: pd.DataFrame, cost: NightCost) -> str:
    """The parent run's closing log line."""
    if rounds.empty:
        return "the night: no round to run"
    promoted = [
        f"round {r['round_id']} ({r['champion_after']})"
        for _, r in rounds.iterrows()
        if decision_word(r) == "promoted"
    ]
    look = needs_a_look(rounds, cost)
    return (
        f"the night: {_span(rounds)} run, {len(promoted)} promoted"
        f"{': ' + ', '.join(promoted) if promoted else ''}; champion now "
        f"{champion_after(rounds.iloc[-1])}; eval win "
        f"rate by round {_trend(rounds, 'win_rate')}; checker accuracy "
        f"{_trend(rounds, 'sandbox_accuracy')}; {count(cost.n_judge_calls)} judge calls, "
        f"{count(cost.n_tokens)} tokens, {usd(cost.cost_usd)}, {duration(cost.wall_s)}; "
        f"needs a look: {'; '.join(look) if look else 'nothing'}"
    )


def night_markdown(config: Config, rounds: pd.DataFrame, cost: NightCost) -> str:
    """The `flywheel-night` artifact: the outcome first, then the rounds, the cost, the checks."""
    if rounds.empty:
        return "# The night\n\nNo round to run: the warehouse already held every planned round."
    first, last = rounds.iloc[0], rounds.iloc[-1]
    n_promoted = sum(decision_word(r) == "promoted" for _, r in rounds.iterrows())
    look = needs_a_look(rounds, cost)
    table = pd.DataFrame(round_metrics_table(rounds, config.evaluation.ci))
    best = (
        rounds.loc[rounds["win_rate"].astype(float).idxmax()]
        if rounds["win_rate"].notna().any()
        else None
    )
    lines = [
        f"# The night: {_span(rounds)}, {n_promoted} promoted",
        "",
        f"**Champion:** {first['champion_before']} -> {champion_after(last)}",
        "",
        f"**Eval win rate by round:** {_trend(rounds, 'win_rate')}"
        + (
            ""
            if best is None
            else f" (best: round {best['round_id']}, "
            f"{interval(best['win_rate'], best['win_rate_ci_low'], best['win_rate_ci_high'])})"
        ),
        "",
        f"**Checker accuracy of the champion after each round:** "
        f"{_trend(rounds, 'sandbox_accuracy')}",
        "",
        table.to_markdown(index=False),
        "",
        "## Cost",
        f"{count(cost.n_judge_calls)} judge calls paid, {count(cost.n_calls)} calls in all "
        f"({count(cost.n_tokens)} tokens, {usd(cost.cost_usd)}); rounds' wall time "
        f"{duration(cost.wall_s)}. Games answered from the call cache cost nothing and are "
        "not counted here (each round's summary gives games judged and calls paid).",
        "",
        text_table(cost.per_round, COST_HEADERS),
        "",
        "## Needs a look",
        *([f"- {item}" for item in look] or ["Nothing: every round finished, no call failed."]),
    ]
    return "\n".join(lines)


def night_headline(rounds: pd.DataFrame) -> str:
    """The parent run's state message: `rounds 1-3: 1 promoted, champion r2-dpo`."""
    if rounds.empty:
        return "no round to run"
    n_promoted = sum(decision_word(r) == "promoted" for _, r in rounds.iterrows())
    last = rounds.iloc[-1]
    champion = champion_after(last)
    unfinished = sum(rounds["status"] != "done")
    note = f", {unfinished} unfinished" if unfinished else ""
    return f"{_span(rounds)}: {n_promoted} promoted{note}, champion {champion}"


@dataclass(frozen=True)
class NightSummary:
    line: str  # the closing log line
    headline: str  # the parent run's state message


def publish_night_summary(config: Config, round_ids: list[int]) -> NightSummary:
    """The `flywheel-night` artifact of the rounds this run ran; returns what to log."""
    summaries = round_summaries(config)
    rounds = summaries[summaries["round_id"].isin(round_ids)].reset_index(drop=True)
    cost = night_cost(config, rounds)
    create_markdown_artifact(
        markdown=night_markdown(config, rounds, cost),
        key=NIGHT_KEY,
        description="what this run of the flywheel did",
    )
    return NightSummary(night_line(rounds, cost), night_headline(rounds))
