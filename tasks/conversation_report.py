"""The round's conversation artifacts (evaluation.mode conversations or both), beside the round's
summary in the Prefect UI:

- `round-<n>-conversations`: one row per persona kind and one over all kinds: how the
  simulated users behaved (conversations, user turns, pushed back, gave up, ended satisfied)
  and how far the simulation agrees with what is known (v_conversation_calibration): the judge
  and the simulated user against the sandbox's ground truth, the simulated user against real
  users' feedback on the same model and opening, the judge against the real users' preference
  between the same two models;
- `round-<n>-conversation-realism`: per model, the simulated users beside the logged users of
  the same model (or of every logged model), v_realism_vs_logs;
- `round-<n>-conversation-costs`: the simulated user, the model and the conversation judge:
  requests, calls paid this round, failed calls, tokens, cost (v_conversation_costs).

Nothing is published for a round without simulated conversations. Every figure is written by
flywheel/figures.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from prefect.artifacts import create_table_artifact

from flywheel.config import Config
from flywheel.figures import UNKNOWN, count, known, measure, share, usd
from flywheel.warehouse.store import connect_warehouse, read_query

AGREEMENTS = {  # column -> (agreeing count, compared count)
    "judge vs truth": ("n_agree", "n_decisive_truth"),
    "user vs truth": ("n_user_agree_truth", "n_user_truth"),
    "user vs real users": ("n_user_agree_feedback", "n_user_feedback"),
    "judge vs real users": ("n_judge_agree_feedback", "n_judge_feedback"),
}


@dataclass(frozen=True)
class ConversationTables:
    kinds: pd.DataFrame
    realism: pd.DataFrame
    costs: pd.DataFrame


def conversation_tables(config: Config, round_id: int) -> ConversationTables:
    params = {"round_id": round_id}
    with connect_warehouse(config.warehouse) as con:
        return ConversationTables(
            *(
                con.execute(read_query(f"conversation_report_{name}"), params).df()
                for name in ("kinds", "realism", "costs")
            )
        )


def agreement(agree: object, compared: object) -> str:
    """`12/14 (0.857)`; `-` where nothing could be compared."""
    n = known(compared)
    if not n:
        return UNKNOWN
    return f"{count(agree)}/{count(n)} ({share((known(agree) or 0) / n)})"


def kind_rows(kinds: pd.DataFrame) -> list[dict[str, str]]:
    """The `round-<n>-conversations` rows (module doc)."""
    rows = []
    for _, r in kinds.iterrows():
        row = {
            "persona kind": str(r["persona_kind"]),
            "conversations": count(r["n_conversations"]),
            "user turns": measure(r["mean_user_turns"]),
            "pushed back": share(r["pushed_back_share"]),
            "gave up": share(r["gave_up_share"]),
            "ended satisfied": share(r["satisfied_share"]),
        }
        for column, (agree, compared) in AGREEMENTS.items():
            row[column] = agreement(r[agree], r[compared])
        rows.append(row)
    return rows


def realism_rows(realism: pd.DataFrame) -> list[dict[str, str]]:
    """The `round-<n>-conversation-realism` rows: each figure simulated | logged."""
    rows = []
    for _, r in realism.iterrows():
        row = {
            "model": str(r["model_id"]),
            "logs of": str(r["log_scope"]),
            "conversations": f"{count(r['n_conversations'])} | {count(r['log_n_conversations'])}"
            f" ({count(r['log_n_with_verdict'])} with feedback)",
            "user turns": f"{measure(r['mean_user_turns'])} | {measure(r['log_mean_user_turns'])}",
        }
        for name, column in (
            ("pushed back", "pushed_back_share"),
            ("gave up", "gave_up_share"),
            ("ended satisfied", "satisfied_share"),
        ):
            row[name] = f"{share(r[column])} | {share(r['log_' + column])}"
        rows.append(row)
    return rows


def cost_rows(costs: pd.DataFrame) -> list[dict[str, str]]:
    """The `round-<n>-conversation-costs` rows, one per part."""
    return [
        {
            "part": str(r["part"]),
            "requests": count(r["n_requests"]),
            "calls paid": count(r["n_calls_paid"]),
            "failed calls": count(r["n_errors"]),
            "tokens": count(r["n_tokens"]),
            "cost": usd(r["cost_usd"]),
        }
        for _, r in costs.iterrows()
    ]


def publish_conversation_report(config: Config, round_id: int) -> bool:
    """The round's three conversation tables (module doc); False when it has none."""
    tables = conversation_tables(config, round_id)
    if tables.kinds.empty:
        return False
    create_table_artifact(
        table=kind_rows(tables.kinds),
        key=f"round-{round_id}-conversations",
        description=f"round {round_id}: simulated users per persona kind, and how far the "
        "judge and the simulated user agree with the sandbox's truth and with real users",
    )
    create_table_artifact(
        table=realism_rows(tables.realism),
        key=f"round-{round_id}-conversation-realism",
        description=f"round {round_id}: simulated | logged users of each model",
    )
    create_table_artifact(
        table=cost_rows(tables.costs),
        key=f"round-{round_id}-conversation-costs",
        description=f"round {round_id}: what the simulated user, the model and the "
        "conversation judge cost",
    )
    return True
