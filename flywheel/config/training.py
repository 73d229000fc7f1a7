"""`training`: the output directory, the seed, LoRA, the launcher, and one section per stage's
config class (`training.sft`, `.dpo`, `.rm`, `.rl`, `.kto`, `.orpo`), taken from the stage
registry (llm/stages/registry.py; each class lives in its stage's module); mining rules are in
`flywheel/config/mining.py`. A field under the wrong stage is refused naming the section that
has it."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, create_model, model_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import field_problem
from flywheel.config.mining import MiningConfig
from flywheel.llm.stages.registry import (
    STAGES,
    absent_sections,
    config_sections,
    section_owners,
)


def default_cpu_threads() -> int:
    """A fixed thread count (never load-dependent, so training is reproducible): up to 4."""
    return min(4, os.cpu_count() or 1)


class LoraConfig(Section):
    enabled: bool = _help(
        "train a LoRA adapter (PEFT) instead of every weight; the candidate is saved merged "
        "into a full checkpoint, with the adapter beside it in `adapter/`",
        default=False,
    )
    r: int = _help("LoRA rank", default=16, gt=0)
    alpha: int = _help("LoRA alpha (the update is scaled by alpha / r)", default=32, gt=0)
    dropout: float = _help("dropout on the LoRA input", default=0.05, ge=0, lt=1)
    target_modules: list[str] = _help(
        "module names to adapt (e.g. q_proj, v_proj), or [all-linear]; checked against the "
        "model before training",
        default_factory=lambda: ["all-linear"],
        min_length=1,
    )


class _TrainingHead(Section):
    """The first fields of `training`; the stages' sections follow them."""

    output_dir: str = _help(
        "where candidate checkpoints are written", default="runs/demo/models", min_length=1
    )
    seed: int = _help("training seed", default=0)


_WithStageSections: Any = create_model(
    "_WithStageSections",
    __base__=_TrainingHead,
    __module__=__name__,
    **{
        key: (cls, Field(default_factory=absent_sections()[key]))
        for key, cls in config_sections().items()
    },
)


def misplaced_field(data: Any) -> Any:
    """The first field set under a stage section that has no such field but another has:
    a config error naming the sections it belongs to (None when there is none)."""
    if not isinstance(data, dict):
        return None
    for key, cls in config_sections().items():
        section = data.get(key)
        if not isinstance(section, dict):
            continue
        for field, value in section.items():
            owners = [f"training.{owner}" for owner in section_owners(field)]
            if field not in cls.model_fields and owners:
                return field_problem(
                    f"{key} has no `{field}`; it belongs to {' and '.join(owners)}",
                    f"move it to {' or '.join(owners)}, or remove it",
                    field=f"{key}.{field}",
                    value=value,
                )
    return None


class TrainingConfig(_WithStageSections):
    mining: MiningConfig = Field(default_factory=MiningConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    launcher: Literal["in_process", "accelerate"] = _help(
        "in_process trains inside `flywheel run`; accelerate runs each stage as "
        "`accelerate launch --num_processes N -m flywheel.llm.stage_entry` and waits for it",
        default="in_process",
    )
    num_processes: int = _help(
        "accelerate launcher: training processes (at most one per GPU; on CPU, gloo)",
        default=1,
        gt=0,
    )
    accelerate_config_file: str | None = _help(
        "accelerate launcher: `--config_file` (YAML/JSON; DeepSpeed ZeRO or FSDP go here)",
        default=None,
    )
    keep_rejected: int | None = _help(
        "keep the checkpoints of the last K rejected candidates (champions are always kept) "
        "and delete older ones after each round; null keeps every checkpoint",
        default=None,
        ge=0,
    )
    cpu_threads: int = _help(
        "torch CPU threads for training and local generation (fixed, for reproducible "
        "results; OMP_NUM_THREADS overrides it)",
        default_factory=default_cpu_threads,
        gt=0,
    )

    @model_validator(mode="after")
    def _check_launcher_file(self) -> TrainingConfig:
        if self.accelerate_config_file is not None and self.launcher != "accelerate":
            raise field_problem(
                "is set but training.launcher is not accelerate",
                "set training.launcher: accelerate, or remove accelerate_config_file",
                field="accelerate_config_file",
                value=self.accelerate_config_file,
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _check_misplaced_fields(cls, data: Any) -> Any:
        problem = misplaced_field(data)
        if problem is not None:
            raise problem
        return data

    @model_validator(mode="after")
    def _check_stages(self) -> TrainingConfig:
        """Each stage's rules across its sections and the shared settings."""
        for stage in STAGES:
            if stage.check_training is not None:
                stage.check_training(self)
        return self
