"""Typed configuration, loaded from one YAML file per recipe (`configs/demo.yaml` by default).

Every field has a type, a default and one line of help. An invalid file is refused before
anything runs: `ConfigError` names the field, the bad value and the fix. Unknown keys are
errors. API keys are never stored here: an endpoint names the environment variable that
holds its key (`api_key_env`), and the key is read only when the client is built.

One module per section of the YAML file; this package's interface is the names below.
"""

from flywheel.config.base import ConfigError, Section
from flywheel.config.checks import SANDBOX_URL
from flywheel.config.endpoints import (
    EndpointConfig,
    JudgeConfig,
    RetryConfig,
    SelectionConfig,
    resolve_sandbox_endpoints,
)
from flywheel.config.evaluation import EvaluationConfig
from flywheel.config.logs import LogsConfig
from flywheel.config.mining import MiningConfig
from flywheel.config.prompts import PromptsConfig
from flywheel.config.root import DEFAULT_CONFIG_PATH, Config, load_config, parse_config
from flywheel.config.sandbox import SandboxConfig, SandboxModelConfig
from flywheel.config.schedule import ScheduleConfig
from flywheel.config.student import (
    SERVE_PLACEHOLDERS,
    SERVER_COMMAND,
    VLLM_COMMAND,
    Backend,
    ServeConfig,
    StudentConfig,
)
from flywheel.config.training import (
    LoraConfig,
    TrainingConfig,
    default_cpu_threads,
)
from flywheel.config.warehouse import WarehouseConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "SANDBOX_URL",
    "SERVE_PLACEHOLDERS",
    "SERVER_COMMAND",
    "VLLM_COMMAND",
    "Backend",
    "Config",
    "ConfigError",
    "EndpointConfig",
    "EvaluationConfig",
    "JudgeConfig",
    "LogsConfig",
    "LoraConfig",
    "MiningConfig",
    "PromptsConfig",
    "RetryConfig",
    "SandboxConfig",
    "SandboxModelConfig",
    "ScheduleConfig",
    "Section",
    "SelectionConfig",
    "ServeConfig",
    "StudentConfig",
    "TrainingConfig",
    "WarehouseConfig",
    "default_cpu_threads",
    "load_config",
    "parse_config",
    "resolve_sandbox_endpoints",
]
