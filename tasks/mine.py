"""Step 4 of the round: battles become SFT examples, DPO pairs, reward-model pairs and KTO
examples, and so does users' feedback on logged answers (`tasks/mine_feedback.py`); and the rows a stage trains on are read back (`training_mix`: the round's, plus a
replay of earlier rounds' capped by `training.mining.replay_rows`).

Which kinds of rows a round mines, and each kind's table, key and selection query, come from the
stage registry (llm/stages/registry.py); the selection rules are SQL
(`warehouse/queries/mine_*.sql`); this module picks the score-gap
threshold K for the round (Arena Learning: K=3 for SFT and K=2 for preference pairs in the
first iteration, 1 later) and writes the rows idempotently. A battle judged without scores
(five labels, pair labels) is mined by its label strength instead
(`training.mining.min_label_strength`). With `training.mining.sft_rule: refine` the SFT
battles are selected by the same rule, and their targets are a reference's corrections of the
champion's answers (`tasks/refine.py`, the step's only model calls); battles whose correction
failed are counted, logged and recorded in `rounds.n_sft_without_target`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from flywheel.config import Config
from flywheel.figures import count
from flywheel.llm.stages.registry import data_kind, kinds_mined, stage_named
from flywheel.llm.stages.spec import DataKind
from flywheel.logs import step_logger
from flywheel.tasks.data_mix import ORIGIN, ROUND, MixReport, apply_mix, without_mix_columns
from flywheel.tasks.mine_feedback import FeedbackMiningReport, mine_feedback
from flywheel.tasks.refine import RefineReport, refine_sft_targets
from flywheel.warehouse.export import export_replay, export_rows
from flywheel.warehouse.store import WarehouseSettings, connect_warehouse, read_query
from flywheel.warehouse.writes import insert_new

SOURCES = "the train battles"
SOURCES_WITH_FEEDBACK = "the train battles and users' feedback"


@dataclass(frozen=True)
class MiningRule:
    data: DataKind  # the kind of rows it selects
    min_gap: float  # the score gap K a battle needs

    @property
    def kind(self) -> str:
        return self.data.name


@dataclass(frozen=True)
class MiningReport:
    round_id: int
    n_added: dict[str, int]  # kind -> rows added by this run (battles and feedback)
    n_total: dict[str, int]  # kind -> rows the round holds
    refine: RefineReport | None = None  # sft_rule refine: the corrections asked for
    feedback: FeedbackMiningReport | None = None  # the rows mined from users' feedback


def iteration_of(config: Config, round_id: int) -> int:
    """0 for the first pass through the stage schedule, 1 for the second, ..."""
    return (round_id - 1) // len(config.schedule.stages)


def mining_rules(config: Config, round_id: int, stage: str) -> list[MiningRule]:
    """The kinds mined every round (SFT, DPO) and the stage's own (reward-model pairs on the
    rm+rl stage's slice, KTO examples on the kto stage's), each with its score gap: its first
    one, then `min_gap_later` (KTO: `kto_min_gap` in every iteration)."""
    mining = config.training.mining
    first = iteration_of(config, round_id) == 0
    return [
        MiningRule(kind, kind.min_gap(mining, first)) for kind in kinds_mined(stage_named(stage))
    ]


def mine_round(config: Config, round_id: int, stage: str) -> MiningReport:
    """Select this round's examples by the rules and store the new ones (re-runs add nothing).

    With `sft_rule: refine` the SFT targets are references' corrections."""
    n_added: dict[str, int] = {}
    n_total: dict[str, int] = {}
    refined: RefineReport | None = None
    rules = mining_rules(config, round_id, stage)
    for rule in rules:
        selected = select_examples(config, round_id, rule)
        if rule.data.refinable and config.training.mining.sft_rule == "refine":
            refined = refine_sft_targets(config, round_id, selected)
            n_added[rule.kind] = refined.n_refined
        else:
            with connect_warehouse(config.warehouse) as con:
                n_added[rule.kind] = insert_new(
                    con, rule.data.table, selected, battle_key(rule.data, selected)
                )
    feedback = mine_feedback(config, round_id, [rule.data for rule in rules])
    for kind, n_feedback in feedback.n_added.items():
        n_added[kind] += n_feedback
    with connect_warehouse(config.warehouse) as con:
        for rule in rules:
            counted = {"kind": rule.kind, "round_id": round_id}
            n_total[rule.kind] = con.execute(read_query("mined_count"), counted).fetchone()[0]
    sources = SOURCES_WITH_FEEDBACK if any(feedback.n_added.values()) else SOURCES
    log_mining(round_id, n_total, n_added, refined, sources)
    if refined is not None:
        record_without_target(config, round_id, refined.n_without_target)
    return MiningReport(round_id, n_added, n_total, refined, feedback)


def battle_key(kind: DataKind, selected: pd.DataFrame) -> list[str]:
    """The key a battle row is stored by: its kind's, and its origin where the table has one,
    so a feedback row of the same round and prompt never hides a battle row."""
    return [*kind.key, "origin"] if "origin" in selected.columns else list(kind.key)


def select_examples(config: Config, round_id: int, rule: MiningRule) -> pd.DataFrame:
    """The rows the rule selects from this round's battles (SQL: the kind's `mining_query`)."""
    query = read_query(rule.data.mining_query)
    params = {
        "round_id": round_id,
        "min_gap": rule.min_gap,
        "min_strength": config.training.mining.min_label_strength,
    }
    if rule.data.shares_table:
        params["kind"] = rule.kind
    with connect_warehouse(config.warehouse) as con:
        return con.execute(query, params).df()


def log_mining(
    round_id: int,
    n_total: dict[str, int],
    n_added: dict[str, int],
    refined: RefineReport | None,
    sources: str = SOURCES,
) -> None:
    """One line per mining run; a warning when refined SFT battles were left without a target."""
    logger = step_logger(__name__)
    counts = mining_counts(n_total, n_added)
    if refined is None:
        logger.info("round %d mined: %s from %s", round_id, counts, sources)
    elif refined.n_without_target:
        logger.warning(
            "round %d mined: %s from %s; %s; a rerun of the round (or flywheel "
            "run --retry-failed) "
            "asks the failed ones again",
            round_id,
            counts,
            sources,
            refined.summary(),
        )
    else:
        logger.info("round %d mined: %s from %s; %s", round_id, counts, sources, refined.summary())


def record_without_target(config: Config, round_id: int, n_without_target: int) -> None:
    """Keep on the round's row how many SFT battles the refine rule left without a target."""
    params = {"round_id": round_id, "n_without_target": n_without_target}
    with connect_warehouse(config.warehouse) as con:
        con.execute(read_query("mine_record_without_target"), params)


def mining_counts(n_total: dict[str, int], n_added: dict[str, int]) -> str:
    """`sft 12 (12 new), dpo 30 (30 new)`: the round's rows per kind and this run's share."""
    return ", ".join(
        f"{kind} {count(n_total[kind])} ({count(n_added[kind])} new)" for kind in n_total
    )


@dataclass(frozen=True)
class TrainingRows:
    """A stage's rows for one round: the earlier rounds' it replays, then the round's own,
    kept to the stage's data mix (`training.mix`) when one is set."""

    rows: list[dict]
    n_this_round: int
    n_earlier: int  # earlier rounds' rows trained on
    n_earlier_available: int  # earlier rounds' rows there are (accumulate); 0 without
    replay_rows: int | None  # training.mining.replay_rows of the stage; None: no cap
    mix: MixReport | None = None  # rows per origin (battle, refine, feedback), asked and got

    def describe(self) -> dict[str, int | None]:
        """The mix recorded with the training run (`hyperparams.replay`)."""
        return {
            "replay_rows": self.replay_rows,
            "n_this_round": self.n_this_round,
            "n_earlier": self.n_earlier,
            "n_earlier_available": self.n_earlier_available,
        }

    def recorded(self) -> dict[str, object]:
        """What the training run records in `training_runs.hyperparams` about its rows: the
        replay (`replay`) and the rows per origin, asked and got (`mix`)."""
        return {"replay": self.describe(), "mix": None if self.mix is None else self.mix.describe()}


def training_mix(config: Config, round_id: int, stage: str) -> TrainingRows:
    """TRL-ready rows for the stage: this round's and, when accumulating, earlier rounds'
    (at most `training.mining.replay_rows[stage]` of them, newest and widest gap first), kept
    to `training.mix[stage]` when set (tasks/data_mix.py)."""
    kind = stage_named(stage).data
    mining = config.training.mining
    cap = mining.replay_rows.get(stage)
    columns = (*kind.columns, ORIGIN, ROUND)
    with connect_warehouse(config.warehouse) as con:
        if not mining.accumulate:
            rows, n_available = export_rows(con, kind.view, columns, round_id), 0
        else:
            rows, _, n_available = export_replay(con, kind.view, columns, round_id, cap)
    asked = config.training.mix.get(stage)
    kept, report = apply_mix(rows, round_id, asked, config.training.seed)
    if asked is not None:
        log_data_mix(round_id, stage, report)
    n_this_round = sum(row[ROUND] == round_id for row in kept)
    n_earlier = len(kept) - n_this_round
    return TrainingRows(
        without_mix_columns(kept), n_this_round, n_earlier, n_available, cap, report
    )


def log_data_mix(round_id: int, stage: str, report: MixReport) -> None:
    """What the stage's data mix kept per origin; a warning for an asked origin with no rows."""
    asked = report.asked or {}
    kept = ", ".join(
        f"{origin} {count(report.got.get(origin, 0))} of {count(report.available.get(origin, 0))}"
        f" (asked {share:.0%})"
        for origin, share in asked.items()
    )
    logger = step_logger(__name__)
    missing = report.missing()
    if missing:
        logger.warning(
            "round %d %s data mix (training.mix): %s; no %s rows this round, so nothing is "
            "kept: change training.mix.%s or add the missing data",
            round_id,
            stage,
            kept,
            " or ".join(missing),
            stage,
        )
    else:
        logger.info("round %d %s data mix (training.mix): %s", round_id, stage, kept)


def training_rows(config: Config, round_id: int, stage: str) -> list[dict]:
    """TRL-ready rows for the stage (`training_mix`'s rows)."""
    return training_mix(config, round_id, stage).rows


def dpo_pairs_up_to(
    warehouse: WarehouseSettings, round_id: int, replay_rows: int | None
) -> tuple[list[dict], int]:
    """The DPO pairs mined up to and including `round_id` (TRL's prompt/chosen/rejected), the
    earlier rounds' capped at `replay_rows` (newest round and widest gap first; None: all), and
    how many earlier pairs there are: what the reward models that rank answers are fit on."""
    pairs = data_kind("dpo")
    with connect_warehouse(warehouse) as con:
        rows, _, n_earlier = export_replay(con, pairs.view, pairs.columns, round_id, replay_rows)
    return rows, n_earlier
