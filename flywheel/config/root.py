"""The whole configuration: `Config` (every section, and the checks that span sections), and
reading it from YAML (`load_config`) or a mapping (`parse_config`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from flywheel.config.base import ConfigError, Section, _help
from flywheel.config.checks import SANDBOX_URL, describe_validation_error, field_problem
from flywheel.config.endpoints import EndpointConfig, JudgeConfig
from flywheel.config.evaluation import EvaluationConfig
from flywheel.config.logs import LogsConfig
from flywheel.config.prompts import PromptsConfig
from flywheel.config.sandbox import SandboxConfig
from flywheel.config.schedule import ScheduleConfig
from flywheel.config.student import StudentConfig
from flywheel.config.training import TrainingConfig
from flywheel.config.warehouse import WarehouseConfig

DEFAULT_CONFIG_PATH = Path("configs/demo.yaml")


class Config(Section):
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    references: list[EndpointConfig] = _help(
        "strong reference models the champion battles", min_length=1
    )
    judge: JudgeConfig
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)

    @model_validator(mode="after")
    def _check_cross_fields(self) -> Config:
        names = [ref.name for ref in self.references]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"reference names must be unique; repeated: {duplicated}")
        for endpoint in self.sandbox_endpoints():
            if endpoint is self.student.endpoint and "{version}" in endpoint.model:
                continue  # one sandbox model per version; an unknown one is refused with 404
            if endpoint.model not in self.sandbox.models:
                raise ValueError(
                    f"endpoint {endpoint.name!r} uses the sandbox but sandbox.models has no "
                    f"{endpoint.model!r}; add it under sandbox.models or change its model"
                )
        self._check_anchor_model()
        self._check_refine_with()
        self._check_winrate_prompts()
        self._check_conversation_student()
        return self

    def _check_conversation_student(self) -> None:
        """A conversation's later turns go to the student over HTTP, through the call cache."""
        backend = self.student.answer_backend
        if self.evaluation.mode == "single_turn" or backend != "local":
            return
        raise field_problem(
            "holds conversations, whose later turns the student answers over HTTP, but "
            "student.backend is local",
            "set student.backend: server, vllm or endpoint, or evaluation.mode: single_turn",
            field="evaluation.mode",
            value=self.evaluation.mode,
        )

    def _check_refine_with(self) -> None:
        """The reference that corrects the champion's answers must be one of the references."""
        refine_with = self.training.mining.refine_with
        names = [ref.name for ref in self.references]
        if refine_with is None or refine_with in names:
            return
        raise field_problem(
            "names no reference (the corrector is a reference's `name`, not its model id)",
            f"set it to one of {', '.join(names)}, or to null for the reference that won "
            "each battle",
            field="training.mining.refine_with",
            value=refine_with,
        )

    def _check_winrate_prompts(self) -> None:
        """The win-rate check holds prompts out of a slice: RL must keep some to train on."""
        rl, slice_size = self.training.rl, self.prompts.slice_size
        if rl.winrate_check_every == 0 or rl.winrate_prompts < slice_size:
            return
        raise field_problem(
            f"holds out every prompt of a slice (prompts.slice_size = {slice_size}), leaving "
            "none for RL",
            f"set training.rl.winrate_prompts below {slice_size} (e.g. {max(1, slice_size // 10)})",
            field="training.rl.winrate_prompts",
            value=rl.winrate_prompts,
        )

    def _check_anchor_model(self) -> None:
        """The anchor's rating is fixed, so it must be a model in every rating: a reference."""
        anchor = self.evaluation.anchor_model
        valid = [ref.model_id for ref in self.references]
        if anchor is None or anchor in valid:
            return
        raise field_problem(
            "names no model that battles (the anchor must be a reference, `ref:<name>`)",
            f"set it to one of {', '.join(valid)}, or remove it to anchor the first reference",
            field="evaluation.anchor_model",
            value=anchor,
        )

    def sandbox_endpoints(self) -> list[EndpointConfig]:
        endpoints: list[EndpointConfig] = [*self.references, *self.judge.members]
        if self.student.endpoint is not None:
            endpoints.append(self.student.endpoint)
        if self.evaluation.conversations.simulator is not None:
            endpoints.append(self.evaluation.conversations.simulator)
        if self.logs.classifier is not None:
            endpoints.append(self.logs.classifier)
        return [e for e in endpoints if e.base_url == SANDBOX_URL]

    @property
    def uses_sandbox(self) -> bool:
        return bool(self.sandbox_endpoints())

    def fingerprint(self) -> str:
        """A short hash of the whole configuration (secrets are never part of it)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_config(data: Any, source: str = "<dict>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(
            f"invalid configuration in {source}: the top level must be a mapping of sections "
            f"(warehouse, student, references, judge, ...), got {type(data).__name__}"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, source, Config)) from e


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Read and validate a YAML config; raise ConfigError naming what is wrong and how to fix it."""
    config_path = Path(path)
    if not config_path.is_file():
        raise ConfigError(
            f"config file {str(config_path)!r} does not exist. Fix: pass --config with the path of "
            "a YAML file such as configs/demo.yaml."
        )
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(config_path)!r} is not valid YAML: {e}") from e
    return parse_config(data, str(config_path))
