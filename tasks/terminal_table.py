"""The per-round table `flywheel run` prints at the end: the same figures, with the same digits,
as the `round-metrics` artifact (flywheel/figures.py), plus the mined counts and the general
set's figures."""

from __future__ import annotations

import pandas as pd

from flywheel.figures import count, duration, interval, measure, share, wins_ties_losses
from flywheel.tasks.report_data import decision_word

COLUMNS = (  # (header, width, align): `<` left, `>` right
    ("round", 5, ">"),
    ("stage", 10, "<"),  # online-dpo
    ("battles", 7, ">"),
    ("sft", 5, ">"),
    ("dpo", 5, ">"),
    ("rm", 5, ">"),
    ("win rate [CI]", 20, "<"),
    ("W/T/L", 11, "<"),
    ("decision", 13, "<"),
    ("accuracy", 8, ">"),
    ("gen NLL", 7, ">"),
    ("x champ", 7, ">"),
    ("collapse", 8, ">"),
    ("wall", 7, ">"),
)


def _cells(r: pd.Series) -> list[str]:
    return [
        str(r["round_id"]),
        str(r["stage"]),
        count(r["n_battles"]),
        count(r["n_sft"]),
        count(r["n_dpo"]),
        count(r["n_rm"]),
        interval(r["win_rate"], r["win_rate_ci_low"], r["win_rate_ci_high"]),
        wins_ties_losses(r.get("wins"), r.get("ties"), r.get("losses")),
        decision_word(r),
        share(r["sandbox_accuracy"]),
        measure(r["general_nll"]),
        measure(r["general_nll_ratio"]),
        share(r["general_collapse_share"]),
        duration(r["wall_s"]),
    ]


def _line(cells: list[str]) -> str:
    return " ".join(
        f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, COLUMNS, strict=True)
    ).rstrip()


def terminal_table(summaries: pd.DataFrame) -> str:
    """The per-round table `flywheel run` prints, then the cause of each unfinished round."""
    lines = [_line([header for header, _, _ in COLUMNS])]
    lines += [_line(_cells(r)) for _, r in summaries.iterrows()]
    lines += [
        f"round {r['round_id']} {r['status']}: {r['error']}"
        for _, r in summaries.iterrows()
        if r["status"] != "done" and isinstance(r["error"], str) and r["error"]
    ]
    return "\n".join(lines)
