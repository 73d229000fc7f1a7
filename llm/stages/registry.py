"""The training stages, in one list: what `schedule.stages` may name, which `training.<key>`
config sections exist, which kinds of rows are mined and exported, and how each stage trains.

Read by the config (flywheel/config/schedule.py, training.py), the train step (tasks/train.py),
the launcher and its entry point (llm/launcher.py, llm/stage_entry.py), mining (tasks/mine.py),
the online pairs (tasks/online_pairs.py), retention (tasks/prune.py), export
(warehouse/export.py) and the CLI (`flywheel export --kind`).
A new stage is one module with a `STAGE`, added to `STAGES` below.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flywheel.llm.stages import dpo, kto, online_dpo, orpo, rm_rl, sft
from flywheel.llm.stages.spec import DataKind, Stage

STAGES: tuple[Stage, ...] = (
    sft.STAGE,
    dpo.STAGE,
    rm_rl.STAGE,
    kto.STAGE,
    orpo.STAGE,
    online_dpo.STAGE,
)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
DATA_KINDS: tuple[DataKind, ...] = tuple({stage.data.name: stage.data for stage in STAGES}.values())
DATA_KIND_NAMES: tuple[str, ...] = tuple(kind.name for kind in DATA_KINDS)
# kinds whose rows the train step makes before training (the champion's scored samples,
# tasks/online_pairs.py) instead of the mining step from the round's battles
MADE_BEFORE_TRAINING: tuple[DataKind, ...] = (online_dpo.ONLINE_DPO_DATA,)


def stage_named(name: str) -> Stage:
    """The stage `schedule.stages` calls `name` (KeyError for an unknown one)."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"no training stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")


def data_kind(name: str) -> DataKind:
    """The kind of mined rows called `name` (KeyError for an unknown one)."""
    for kind in DATA_KINDS:
        if kind.name == name:
            return kind
    raise KeyError(f"no kind of mined rows {name!r}; the kinds are {', '.join(DATA_KIND_NAMES)}")


def kinds_mined(stage: Stage) -> list[DataKind]:
    """What a round of `stage` mines: every kind mined every round, and the stage's own unless
    the train step makes it (`MADE_BEFORE_TRAINING`)."""
    own = stage.data if stage.data not in MADE_BEFORE_TRAINING else None
    return [kind for kind in DATA_KINDS if kind.every_round or kind is own]


def config_sections() -> dict[str, type]:
    """`training.<key>` -> its config class, for every stage in order."""
    return {key: cls for stage in STAGES for key, cls in stage.sections.items()}


def absent_sections() -> dict[str, Callable[[], Any]]:
    """`training.<key>` -> what makes its settings when the YAML leaves the section out."""
    return {
        key: functools.partial(stage.absent_section, key)
        for stage in STAGES
        for key in stage.sections
    }


def section_owners(field: str) -> list[str]:
    """The `training.<key>` sections that have `field`."""
    return [key for key, cls in config_sections().items() if field in cls.model_fields]


def stage_settings(training: Any, stage: Stage) -> dict[str, Any]:
    """The stage's config sections from the `training` config: key -> its settings."""
    return {key: getattr(training, key) for key in stage.sections}
