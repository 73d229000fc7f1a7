"""`student`: the model under training, its checkpoint, and how it answers (`Backend`: local,
a served checkpoint per version through `student.serve`, or a fixed endpoint)."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import SANDBOX_URL, field_problem
from flywheel.config.endpoints import EndpointConfig

Backend = Literal["local", "server", "vllm", "endpoint"]
SERVER_COMMAND = "transformers serve {checkpoint} --host {host} --port {port}"
VLLM_COMMAND = (
    "vllm serve {checkpoint} --host {host} --port {port} "
    "--tensor-parallel-size {tensor_parallel_size} "
    "--gpu-memory-utilization {gpu_memory_utilization} --dtype {dtype}"
)
SERVE_PLACEHOLDERS = frozenset(
    {
        "checkpoint",
        "version",
        "host",
        "port",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        "dtype",
        "max_model_len",
    }
)


class ServeConfig(Section):
    command: str | None = _help(
        "command serving one checkpoint on an OpenAI-compatible port, with placeholders "
        "{checkpoint} {version} {host} {port} {tensor_parallel_size} {gpu_memory_utilization} "
        "{dtype} {max_model_len}; null: `transformers serve` for backend server, `vllm serve` "
        "for backend vllm",
        default=None,
    )
    extra_args: list[str] = _help(
        "arguments appended to the command (e.g. [--enable-prefix-caching])", default=[]
    )
    host: str = _help("address the served model binds", default="127.0.0.1")
    port: int = _help("port it listens on; 0 picks a free one", default=0, ge=0, le=65535)
    health_timeout_s: float = _help(
        "seconds to wait for the server to answer GET /health or /v1/models; then the step "
        "fails with the server's last log lines",
        default=600.0,
        gt=0,
    )
    stop_timeout_s: float = _help(
        "seconds between SIGTERM and SIGKILL when the server is stopped", default=15.0, gt=0
    )
    model: str = _help(
        "the request `model` field: {checkpoint} (what vLLM and transformers serve expect "
        "unless --served-model-name is given) or {version}",
        default="{checkpoint}",
        min_length=1,
    )
    max_concurrency: int = _help("requests in flight at once to the server", default=16, gt=0)
    timeout_s: float = _help("seconds before one request is abandoned", default=300.0, gt=0)
    max_retries: int = _help("retries of a transient failure", default=2, ge=0)
    tensor_parallel_size: int = _help("vllm: GPUs one model is split over", default=1, gt=0)
    gpu_memory_utilization: float = _help(
        "vllm: share of each GPU's memory it may take", default=0.9, gt=0, le=1
    )
    dtype: str = _help("vllm: weight dtype (auto, bfloat16, float16)", default="auto")
    max_model_len: int | None = _help(
        "vllm: context length (null: the model's own)", default=None, gt=0
    )

    @field_validator("command")
    @classmethod
    def _check_command(cls, command: str | None) -> str | None:
        if command is None:
            return None
        names = {name for _, name, _, _ in string.Formatter().parse(command) if name}
        unknown = sorted(names - SERVE_PLACEHOLDERS)
        if unknown:
            raise field_problem(
                f"unknown placeholder {{{unknown[0]}}}",
                f"use only {', '.join('{' + n + '}' for n in sorted(SERVE_PLACEHOLDERS))}",
            )
        if "checkpoint" not in names and "version" not in names:
            raise field_problem(
                "never says which checkpoint to serve",
                "put {checkpoint} where the server takes the model path",
            )
        return command


class StudentConfig(Section):
    path: str = _help(
        "Hugging Face checkpoint directory of the round-0 student; built by `flywheel init` "
        "when `build_if_missing` is true and it does not exist",
        default="runs/demo/student",
        min_length=1,
    )
    build_if_missing: bool = _help(
        "build the sandbox's tiny student when `path` is absent", default=True
    )
    backend: Backend | None = _help(
        "how the model under training answers (champion's train answers, both sides of the "
        "eval): local (HF generate), server (`serve.command` serves each version), vllm "
        "(`vllm serve` serves each version), endpoint (the fixed URL `endpoint`); null: "
        "endpoint when `endpoint` is set, else local",
        default=None,
    )
    serve: ServeConfig = Field(default_factory=ServeConfig)
    cache: bool = _help(
        "reuse a sandbox student built before with the same recipe (copied from the cache "
        "directory in seconds), and keep each new build there",
        default=True,
    )
    cache_dir: str | None = _help(
        "the cache directory (default: $FLYWHEEL_CACHE_DIR, else $XDG_CACHE_HOME/flywheel, "
        "else ~/.cache/flywheel); built students go in its `students/` folder",
        default=None,
        min_length=1,
    )
    endpoint: EndpointConfig | None = _help(
        "backend endpoint: a URL that already serves the student. Its `model` may hold "
        "{checkpoint} or {version} (the server then refuses another version); otherwise "
        "`endpoint_reload_command` must make it serve the version that answers",
        default=None,
    )
    endpoint_reload_command: str | None = _help(
        "backend endpoint: command run before a version answers, with placeholders "
        "{checkpoint} {version}; it must exit 0 once the URL serves that version",
        default=None,
    )
    max_new_tokens: int = _help("tokens generated per answer", default=48, gt=0)
    batch_size: int = _help("prompts per local generate() batch", default=64, gt=0)
    do_sample: bool = _help("sample instead of greedy decoding", default=False)
    temperature: float = _help("sampling temperature when do_sample is true", default=1.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = _help(
        "auto uses a GPU when one is present", default="auto"
    )
    seed: int = _help("seed for building the sandbox student and for sampling", default=0)

    @property
    def answer_backend(self) -> Backend:
        if self.backend is not None:
            return self.backend
        return "endpoint" if self.endpoint is not None else "local"

    @model_validator(mode="after")
    def _check_backend(self) -> StudentConfig:
        backend = self.answer_backend
        if backend == "endpoint" and self.endpoint is None:
            raise field_problem(
                "is endpoint but student.endpoint is not set",
                "set student.endpoint (base_url, model), or choose local, server or vllm",
                field="backend",
                value=backend,
            )
        if backend != "endpoint" or self.endpoint is None:
            return self
        names_version = any(p in self.endpoint.model for p in ("{checkpoint}", "{version}"))
        fixed_real_url = self.endpoint.base_url != SANDBOX_URL
        if fixed_real_url and not names_version and self.endpoint_reload_command is None:
            raise field_problem(
                "is a fixed URL with nothing making it serve the version that must answer (after "
                "a promotion it would answer with stale weights)",
                "put {checkpoint} or {version} in student.endpoint.model (the server then "
                "refuses another version), set student.endpoint_reload_command, or use "
                "backend server or vllm",
                field="endpoint.model",
                value=self.endpoint.model,
            )
        return self
