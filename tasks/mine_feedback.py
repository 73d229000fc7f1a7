"""Step 4, second source: users' feedback on logged answers becomes SFT examples, KTO examples
and preference pairs beside the battles' (called by `tasks/mine.py:mine_round`).

The rules are SQL (`warehouse/queries/mine_feedback_*.sql`): `mine_feedback_labels` resolves
one label per logged answer (explicit feedback wins over implicit; implicit labels need
`training.mining.feedback_min_confidence`; disagreeing labels leave the answer out), then

- a positive answer -> an SFT example (the logged answer is the target), a desirable KTO row;
- a negative answer -> an undesirable KTO row, and with an explicit correction an SFT example
  whose target is the user's corrected answer and a preference pair (DPO, and reward model on
  its stage's rounds) in the answer's context, the correction chosen over the answer;
- a positive and a negative answer to the same context -> a preference pair, the positive
  chosen.

A round mines the kinds its stage mines (`kinds_mined`), from every labelled answer not mined
yet: rows are keyed by the answer, not the round, so a rerun, or the next night reading the
same day's logs, adds nothing. Every row keeps its conversation, turn and feedback rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from flywheel.config import Config
from flywheel.figures import count
from flywheel.llm.stages.spec import DataKind
from flywheel.logs import step_logger
from flywheel.warehouse.contracts import NATURAL_KEYS
from flywheel.warehouse.store import connect_warehouse, read_query
from flywheel.warehouse.writes import insert_new

# the mined table -> the rules that select its feedback rows, in order
FEEDBACK_RULES: dict[str, tuple[str, ...]] = {
    "sft_examples": ("mine_feedback_sft",),
    "preference_pairs": ("mine_feedback_correction_pairs", "mine_feedback_pairs"),
    "kto_examples": ("mine_feedback_kto",),
}
LABELLED_TABLE = "feedback_labelled"  # the temporary table the rules (and the counts) read


@dataclass(frozen=True)
class FeedbackLabels:
    """What the labels of the logged answers came to (answers in the pool's conversations)."""

    n_positive: int
    n_negative: int
    n_corrected: int  # negative answers with an explicit correction (an SFT target)
    n_conflict: int  # answers whose deciding feedback disagreed: left out
    n_implicit: int  # labels decided by implicit feedback (explicit wins where both)

    def summary(self) -> str:
        return (
            f"{count(self.n_positive)} positive, {count(self.n_negative)} negative "
            f"({count(self.n_corrected)} corrected), {count(self.n_conflict)} in conflict, "
            f"{count(self.n_implicit)} labelled by implicit feedback"
        )


@dataclass(frozen=True)
class FeedbackMiningReport:
    labels: FeedbackLabels
    n_added: dict[str, int]  # kind -> feedback rows added by this run


def mine_feedback(config: Config, round_id: int, kinds: Sequence[DataKind]) -> FeedbackMiningReport:
    """Label the logged answers, then store each kind's new feedback rows under `round_id`."""
    labels_query = read_query("mine_feedback_labels")
    min_confidence = config.training.mining.feedback_min_confidence
    n_added: dict[str, int] = {}
    with connect_warehouse(config.warehouse) as con:
        con.execute(
            f"create or replace temp table {LABELLED_TABLE} as {labels_query}",
            {"min_confidence": min_confidence},
        )
        try:
            labels = label_counts(con)
            for kind in kinds:
                if kind.table not in FEEDBACK_RULES:
                    continue
                n_added[kind.name] = mine_kind(con, kind, round_id)
        finally:
            con.execute(f"drop table if exists {LABELLED_TABLE}")
    report = FeedbackMiningReport(labels, n_added)
    log_feedback_mining(round_id, report)
    return report


def mine_kind(con: duckdb.DuckDBPyConnection, kind: DataKind, round_id: int) -> int:
    """Store the new rows of each of the kind's rules; how many were added."""
    params: dict[str, object] = {"round_id": round_id}
    if kind.shares_table:
        params["kind"] = kind.name
    key = list(NATURAL_KEYS[kind.table])
    n_added = 0
    for rule in FEEDBACK_RULES[kind.table]:
        selected = con.execute(read_query(rule), params).df()
        n_added += insert_new(con, kind.table, selected, key)
    return n_added


def label_counts(con: duckdb.DuckDBPyConnection) -> FeedbackLabels:
    """Counts over the temporary table of labelled answers."""
    row = con.execute(read_query("mine_feedback_label_counts")).fetchone()
    return FeedbackLabels(*(int(n) for n in row))


def log_feedback_mining(round_id: int, report: FeedbackMiningReport) -> None:
    """One line: the rows added per kind and what the labels came to."""
    if (
        not any(report.n_added.values())
        and report.labels.n_positive + report.labels.n_negative == 0
    ):
        return
    added = ", ".join(f"{kind} {count(n)} new" for kind, n in report.n_added.items())
    step_logger(__name__).info(
        "round %d mined from users' feedback: %s (labels: %s)",
        round_id,
        added,
        report.labels.summary(),
    )
