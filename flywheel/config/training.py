"""`training`: the output directory, the seed, LoRA, the launcher, and one section per stage's
config class (`training.sft`, `.dpo`, `.rm`, `.rl`, `.kto`, `.orpo`), taken from the stage
registry (llm/stages/registry.py; each class lives in its stage's module), and the data mix per
stage (`training.mix`: the share of battle, refine and feedback rows); mining rules are in
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
    MADE_BEFORE_TRAINING,
    STAGE_NAMES,
    STAGES,
    absent_sections,
    config_sections,
    section_owners,
    stage_named,
)
from flywheel.llm.stages.spec import Stage


def default_cpu_threads() -> int:
    """A fixed thread count (never load-dependent, so training is reproducible): up to 4."""
    return min(4, os.cpu_count() or 1)


def mix_origins(stage: Stage) -> tuple[str, ...]:
    """The origins a stage's rows can have: battle and feedback, and refine where its kind's
    targets can be refined (SFT); none to mix for rows its train step makes (online-dpo)."""
    if stage.data in MADE_BEFORE_TRAINING:
        return ()
    return ("battle", "refine", "feedback") if stage.data.refinable else ("battle", "feedback")


def mix_problem(stage_name: str, shares: dict[str, float], sft_rule: str) -> tuple[str, str] | None:
    """What is wrong with `training.mix.<stage_name>` and its fix; None when it is right."""
    if stage_name not in STAGE_NAMES:
        return (
            f"names no training stage {stage_name!r}",
            f"key it by a stage of schedule.stages ({', '.join(STAGE_NAMES)})",
        )
    origins = mix_origins(stage_named(stage_name))
    if not origins:
        return (
            f"{stage_name} trains on the rows its train step makes, of one origin: no mix",
            f"remove training.mix.{stage_name}",
        )
    unknown = [origin for origin in shares if origin not in origins]
    if unknown:
        return (
            f"{stage_name} rows have no origin {', '.join(unknown)}",
            f"give shares of {', '.join(origins)} only",
        )
    outside = [origin for origin, share in shares.items() if not 0 <= share <= 1]
    if outside:
        return (f"the share of {', '.join(outside)} is not from 0 to 1", "give shares from 0 to 1")
    if abs(sum(shares.values()) - 1) > 1e-6:
        return (
            f"the shares sum to {sum(shares.values()):g}, not 1",
            "make the shares of the named origins add up to 1",
        )
    if shares.get("refine", 0) > 0 and sft_rule != "refine":
        return (
            "asks for refine rows, but training.mining.sft_rule is arena (no refined targets)",
            "set training.mining.sft_rule: refine, or give refine no share",
        )
    return None


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
    mix: dict[str, dict[str, float]] = _help(
        "per stage (as named in schedule.stages), the share of each origin in the rows it "
        "trains on: battle (mined from judged battles), refine (SFT only: battle targets a "
        "reference corrected, training.mining.sft_rule refine) and feedback (users' feedback "
        "on logged answers), e.g. {sft: {battle: 0.5, feedback: 0.5}}; shares from 0 to 1 "
        "summing to 1; the rows are capped to the largest set that matches (the round's own "
        "first, seeded, the same on rerun) and an asked origin without rows keeps none; a "
        "stage left out trains on every row",
        default_factory=dict,
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

    @model_validator(mode="after")
    def _check_mix(self) -> TrainingConfig:
        for stage_name, shares in self.mix.items():
            problem = mix_problem(stage_name, shares, self.mining.sft_rule)
            if problem is not None:
                raise field_problem(*problem, field=f"mix.{stage_name}", value=shares)
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
