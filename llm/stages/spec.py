"""What a training stage is (`Stage`), the mined rows it trains on (`DataKind`), what one run of
it is given (`StageRun`) and what it gives back (`TrainResult`).

Cheap to import (no torch, no TRL): the config and the CLI read the registry built from these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flywheel.config import MiningConfig
    from flywheel.llm.stage_setup import StageSetup
    from flywheel.llm.winrate_stop import WinRateSetup


@dataclass(frozen=True)
class DataKind:
    """One kind of mined rows: where mining stores them and how they are exported for TRL."""

    name: str  # the warehouse's `kind`, and `flywheel export --kind NAME`
    table: str  # the mined table that holds them
    key: tuple[str, ...]  # columns naming one row (mining it again adds nothing)
    mining_query: str  # warehouse/queries/<mining_query>.sql: the round's rows of this kind
    view: str  # the view `export_rows` reads them from
    columns: tuple[str, ...]  # TRL's columns (JSON in the view)
    first_gap: Callable[[MiningConfig], float]  # score gap K in the first iteration
    every_round: bool  # mined every round; else only on its stage's rounds
    refinable: bool = False  # `training.mining.sft_rule: refine` corrects its targets
    # score gap K after the first iteration; None: training.mining.min_gap_later
    later_gap: Callable[[MiningConfig], float] | None = None

    def min_gap(self, mining: MiningConfig, first_iteration: bool) -> float:
        """The score gap K a battle needs to give a row of this kind."""
        if first_iteration:
            return self.first_gap(mining)
        return mining.min_gap_later if self.later_gap is None else self.later_gap(mining)

    @property
    def shares_table(self) -> bool:
        """Kinds sharing a table tell them apart by a `kind` column, which the mining query
        is given as its `kind` parameter."""
        return "kind" in self.key


@dataclass(frozen=True)
class TrainResult:
    """What one training stage produced.

    `hyperparams` are the settings used (for `training_runs.hyperparams`); `metrics` holds
    stage-specific figures such as the reward model's loss and the RL reward.
    """

    output_path: Path
    n_examples: int
    first_loss: float | None
    last_loss: float | None
    wall_s: float
    hyperparams: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageRun:
    """One run of a stage: the champion, the mined rows, where the candidate goes, the stage's
    config sections (`training.<key>` -> its settings) and what every stage shares."""

    base_path: str | Path
    rows: list[dict[str, Any]]
    out_path: str | Path
    settings: Mapping[str, Any]
    seed: int
    setup: StageSetup
    prompts: list[list[dict[str, str]]] | None = None  # the round's prompts (trains_on_prompts)
    max_completion_tokens: int = 48
    winrate: WinRateSetup | None = None  # the RL win-rate check's judge and held-out prompts


def no_side_outputs(out_path: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class Stage:
    """A training stage as the round, the launcher, mining, export and the config see it."""

    name: str  # as written in `schedule.stages`
    sections: Mapping[str, type]  # `training.<key>` -> its config class; the first has min_examples
    data: DataKind  # the mined rows it trains on
    trains_on_prompts: bool  # also trains on the round's prompts (RL)
    train: Callable[[StageRun], TrainResult]
    side_outputs: Callable[[Path], list[Path]] = no_side_outputs  # written beside the candidate
    describe: Callable[[dict[str, Any]], str] | None = None  # a log line from its metrics
    check_training: Callable[[Any], None] | None = None  # rules across `training` sections
    # what a section left out of the YAML is set to (a section given takes the class defaults)
    absent_sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def absent_section(self, key: str) -> Any:
        """`training.<key>`'s settings when the YAML has no such section."""
        return self.sections[key](**self.absent_sections.get(key, {}))

    @property
    def main_section(self) -> str:
        """The `training.<key>` whose min_examples decides whether the stage runs."""
        return next(iter(self.sections))
