"""Typed configuration, loaded from one YAML file per recipe (`configs/demo.yaml` by default).

Every field has a type, a default and one line of help. An invalid file is refused before
anything runs: `ConfigError` names the field, the bad value and the fix. Unknown keys are
errors. API keys are never stored here: an endpoint names the environment variable that
holds its key (`api_key_env`), and the key is read only when the client is built.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flywheel.config_checks import (
    SANDBOX_URL,
    catalog_problem,
    cron_problem,
    describe_validation_error,
    field_problem,
    iana_timezones,
    url_problem,
)
from flywheel.errors import InputError

DEFAULT_CONFIG_PATH = Path("configs/demo.yaml")
Stage = Literal["sft", "dpo", "rm+rl"]
STAGES: tuple[str, ...] = ("sft", "dpo", "rm+rl")


class ConfigError(InputError):
    """An invalid configuration; the message names each bad field, its value and the fix."""


def _help(text: str, **kwargs: Any) -> Any:
    return Field(description=text, **kwargs)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarehouseConfig(Section):
    backend: Literal["duckdb", "ducklake"] = _help(
        "duckdb: one DuckDB file (`path`), one machine; ducklake: a DuckLake `catalog` plus "
        "`data_path`, shared by several writers and analysts at once",
        default="duckdb",
    )
    path: str = _help(
        "DuckDB file holding every round's data; created on first use (backend duckdb)",
        default="warehouse/flywheel.duckdb",
        min_length=1,
    )
    lock_timeout_s: float = _help(
        "seconds to wait for another process to release the file (backend duckdb), or to retry "
        "a DuckLake commit that conflicted with another writer, before failing; 0 fails at once",
        default=120.0,
        ge=0,
    )
    catalog: str | None = _help(
        "backend ducklake: the catalog, `sqlite:<file>` (one machine) or `postgres:<libpq "
        "string>` such as `postgres:host=db dbname=lake user=flywheel` (password from PGPASSWORD)",
        default=None,
    )
    data_path: str | None = _help(
        "backend ducklake: where the data files go, a local folder or `s3://bucket/prefix`",
        default=None,
    )
    s3_endpoint_url: str | None = _help(
        "S3-compatible server for an s3:// data_path (http://host:port for MinIO, moto, ...); "
        "null: AWS",
        default=None,
    )
    s3_region: str = _help("region of the s3:// data_path's bucket", default="us-east-1")
    s3_key_id_env: str = _help(
        "environment variable holding the S3 access key id (the key itself never goes here)",
        default="AWS_ACCESS_KEY_ID",
    )
    s3_secret_env: str = _help(
        "environment variable holding the S3 secret access key", default="AWS_SECRET_ACCESS_KEY"
    )

    @field_validator("catalog")
    @classmethod
    def _check_catalog(cls, catalog: str | None) -> str | None:
        problem = catalog_problem(catalog)
        if problem is not None:
            raise field_problem(
                problem,
                "write `sqlite:<file>` (e.g. sqlite:warehouse/lake.sqlite) or `postgres:<libpq "
                "connection string>` (e.g. postgres:host=127.0.0.1 dbname=lake user=flywheel); a "
                "Postgres password comes from the environment (PGPASSWORD), never from here",
            )
        return catalog

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, endpoint: str | None) -> str | None:
        problem = None if endpoint is None else url_problem(endpoint)
        if problem is not None or endpoint == SANDBOX_URL:
            problem = "not an http:// or https:// URL with a host"
            raise field_problem(problem, "write http://host:port or https://host of the S3 server")
        return endpoint

    @model_validator(mode="after")
    def _check_backend(self) -> WarehouseConfig:
        if self.backend != "ducklake":
            return self
        for name in ("catalog", "data_path"):
            if not getattr(self, name):
                raise field_problem(
                    "required with backend ducklake",
                    "set warehouse.catalog (sqlite:<file> or postgres:<libpq string>) and "
                    "warehouse.data_path (a folder or s3://bucket/prefix), or set "
                    "warehouse.backend: duckdb",
                    field=name,
                    value=None,
                )
        return self

    @property
    def local_file(self) -> Path | None:
        """The one file that identifies this warehouse on this machine: the DuckDB file, or
        a DuckLake's SQLite catalog; None for a Postgres catalog (shared by many machines)."""
        if self.backend == "duckdb":
            return Path(self.path)
        kind, _, rest = (self.catalog or "").partition(":")
        return Path(rest).expanduser() if kind == "sqlite" else None

    @property
    def location(self) -> str:
        """What the warehouse is, for messages and for telling two configs' warehouses apart:
        the file's path, or `ducklake:<catalog>`."""
        if self.backend == "ducklake":
            return f"ducklake:{self.catalog}"
        return self.path


class EndpointConfig(Section):
    name: str = _help("short unique name, used as the model id `ref:<name>`", min_length=1)
    base_url: str = _help(
        "OpenAI-compatible base URL (http://host:port/v1), or `sandbox` for the embedded arena",
        default=SANDBOX_URL,
        min_length=1,
    )
    model: str = _help("the `model` field sent with every request", min_length=1)
    api_key_env: str | None = _help(
        "name of the environment variable holding the API key (the key itself never goes here)",
        default=None,
    )
    max_concurrency: int = _help("requests in flight at once to this endpoint", default=16, gt=0)
    http_client: Literal["aiohttp", "httpx"] = _help(
        "the openai client's HTTP transport: `aiohttp` (the SDK's aiohttp extra, less CPU per "
        "call at high concurrency) or `httpx` (the SDK's default); both honour HTTP(S)_PROXY",
        default="aiohttp",
    )
    timeout_s: float = _help(
        "seconds before one request is abandoned and retried", default=30.0, gt=0
    )
    max_retries: int = _help("retries of a transient failure (429, 5xx, timeout)", default=4, ge=0)
    temperature: float = _help("sampling temperature; 0 is greedy", default=0.0, ge=0, le=2)
    max_tokens: int = _help("upper bound on tokens generated per reply", default=512, gt=0)
    max_context_chars: int | None = _help(
        "context budget in characters of message content (about 4 per token) for one request; "
        "over it the oldest user/assistant turns are dropped, the system prompt and the latest "
        "turns kept (null: no budget)",
        default=None,
        gt=0,
    )
    price_in_per_mtok: float = _help(
        "USD per million prompt tokens (0 for free)", default=0.0, ge=0
    )
    price_out_per_mtok: float = _help(
        "USD per million completion tokens (0 for free)", default=0.0, ge=0
    )
    token_limit_field: Literal["max_tokens", "max_completion_tokens"] = _help(
        "the request field carrying max_tokens; reasoning models (o1, o3, gpt-5) refuse "
        "`max_tokens` with a 400 and need `max_completion_tokens`",
        default="max_tokens",
    )
    stop: list[str] = _help("strings that end a reply (sent as `stop`; empty: none)", default=[])
    seed: int | None = _help("`seed` sent with every request (null: none sent)", default=None)
    extra_body: dict[str, Any] = _help(
        "more JSON fields merged into every request body (e.g. top_k, chat_template_kwargs, "
        "reasoning_effort); they are part of the call-cache key",
        default_factory=dict,
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, base_url: str) -> str:
        problem = url_problem(base_url)
        if problem is not None:
            raise field_problem(
                problem,
                "write the server's OpenAI-compatible base URL, such as "
                "http://127.0.0.1:8000/v1 or https://api.openai.com/v1, or `sandbox` for the "
                "embedded arena",
            )
        return base_url

    @property
    def model_id(self) -> str:
        return f"ref:{self.name}"

    def api_key(self) -> str:
        """The key from the named environment variable; a placeholder for keyless endpoints."""
        if self.api_key_env is None:
            return "no-key"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"endpoint {self.name!r}: environment variable {self.api_key_env} is not set. "
                f"Fix: export {self.api_key_env}=<your key>, or set api_key_env: null for a "
                "keyless endpoint."
            )
        return key


class SelectionConfig(Section):
    """`judge.selection`: which of a round's train battles the judge is asked to decide."""

    strategy: Literal["all", "uncertain", "likely_losses", "random"] = _help(
        "all: judge every (champion, reference) battle of the round; uncertain: judge the "
        "`max_battles` the reward-model ensemble is least certain about (fit on the earlier "
        "rounds' preference pairs; random while there are fewer than training.rm.min_examples); "
        "likely_losses: those the same ensemble most expects the champion to lose; random: a "
        "seeded random `max_battles` (the peer of both)",
        default="all",
    )
    max_battles: int | None = _help(
        "the judge budget of a round's train battles (each is judged in both orders by every "
        "judge of the panel); the rest are recorded as not selected and never judged",
        default=None,
        ge=1,
    )
    ensemble_size: int = _help(
        "reward models the uncertain and likely_losses strategies fit from the champion on "
        "bootstrap resamples (with training.rm's settings and LoRA when training.lora is on)",
        default=3,
        ge=2,
        le=16,
    )

    @model_validator(mode="after")
    def _check_budget(self) -> SelectionConfig:
        if self.strategy != "all" and self.max_battles is None:
            raise field_problem(
                f"strategy {self.strategy} needs a judge budget",
                "set judge.selection.max_battles (battles per round), or strategy: all",
                "max_battles",
                None,
            )
        return self


class JudgeConfig(EndpointConfig):
    name: str = _help("short name of the judge", default="judge", min_length=1)
    prompt_version: str = _help(
        "version of the pairwise judge prompt and its verdict protocol "
        "(evaluators/judge_prompts.py): v1 (1-10 scores), arena-hard-v1 (five labels "
        "[[A>>B]]..[[B>>A]]), mt-bench-pair-v1 ([[A]]/[[B]]/[[C]]), json-v1 (JSON schema "
        "through response_format, text when the endpoint refuses it)",
        default="v1",
    )
    use_verifier: bool = _help(
        "also score checkable prompts with the verifier judge (sandbox skills)", default=True
    )
    max_share_without_gap: float = _help(
        "warn when more than this share of a round's decisive battles has neither a score gap "
        "nor a label strength (the judge's scores were missing or dropped, so mining cannot "
        "rank them)",
        default=0.2,
        ge=0,
        le=1,
    )

    selection: SelectionConfig = _help(
        "which train battles are judged (all, or a budget chosen by a reward-model ensemble "
        "or at random)",
        default_factory=SelectionConfig,
    )
    panel: list[EndpointConfig] = _help(
        "more judges that judge every game with the same prompt version (a judge panel); each "
        "game's verdict is then aggregated by `panel_aggregate`; empty: the judge alone",
        default_factory=list,
    )
    panel_aggregate: Literal["majority", "mean"] = _help(
        "how a panel's verdicts on one game combine: majority (the winner more than half of "
        "the panel names, else a tie) or mean (the higher mean score wins; games without "
        "scores fall back to majority)",
        default="majority",
    )

    @property
    def members(self) -> list[EndpointConfig]:
        """Every judge that judges each game: this one first, then the panel."""
        return [self, *self.panel]

    @model_validator(mode="after")
    def _check_panel_names(self) -> JudgeConfig:
        names = [m.name for m in self.members]
        repeated = sorted({n for n in names if names.count(n) > 1 or n == "verifier"})
        if repeated:
            raise field_problem(
                f"judge names must be unique and not `verifier`; repeated or reserved: {repeated}",
                "give every panel judge its own `name`",
                "panel",
                names,
            )
        return self

    @field_validator("prompt_version")
    @classmethod
    def _check_prompt_version(cls, version: str) -> str:
        from flywheel.evaluators.judge_prompts import JUDGE_PROMPTS

        if version not in JUDGE_PROMPTS:
            raise field_problem(
                "not a known judge prompt version",
                f"use one of {', '.join(sorted(JUDGE_PROMPTS))}",
            )
        return version


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


class PromptsConfig(Section):
    eval_size: int = _help(
        "held-out eval prompts drawn once, stratified by category", default=200, gt=0
    )
    slice_size: int = _help("fresh prompts drawn for each round", default=300, gt=0)
    max_chars: int = _help("longer prompts are rejected at ingest", default=8000, gt=0)
    near_duplicate_threshold: float = _help(
        "Jaccard similarity of word shingles above which prompts are near-duplicates",
        default=0.8,
        gt=0,
        le=1,
    )
    shingle_words: int = _help("words per shingle for near-duplicate detection", default=3, gt=0)
    num_perm: int = _help("MinHash permutations (more: better recall, slower)", default=128, gt=0)
    contamination_ngram: int = _help(
        "a pool prompt sharing a word n-gram this long with an eval prompt is contaminated",
        default=13,
        gt=0,
    )
    batch_size: int = _help("records per ingest batch (bounds memory)", default=20000, gt=0)
    seed: int = _help("seed of the eval draw and the slice partition", default=0)
    sandbox_pool_size: int = _help(
        "sandbox prompts generated into an empty pool on first run, and as many new ones "
        "from fresh seeds whenever the next slices would run short (0: none, bring your own)",
        default=0,
        ge=0,
    )


class ScheduleConfig(Section):
    stages: list[Stage] = _help(
        "stage of each round in turn, cycled (Arena Learning: sft, dpo, rm+rl)",
        default_factory=lambda: ["sft", "dpo", "rm+rl"],
        min_length=1,
    )
    rounds: int = _help("rounds run by `flywheel run` when --rounds is not given", default=3, gt=0)
    cron: str = _help("cron of the nightly deployment (`flywheel serve`)", default="0 2 * * *")
    timezone: str = _help("time zone of the cron schedule", default="UTC")

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str) -> str:
        problem = cron_problem(cron)
        if problem is not None:
            raise field_problem(
                problem,
                'write five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *" '
                "for 02:00 every night",
            )
        return cron

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, timezone: str) -> str:
        if timezone not in iana_timezones():
            raise field_problem(
                "not an IANA time zone",
                "use a name from the tz database, such as UTC, Europe/Berlin or America/New_York",
            )
        return timezone


class MiningConfig(Section):
    sft_min_gap_first: float = _help(
        "score gap K for SFT in the first iteration", default=3.0, ge=0
    )
    dpo_min_gap_first: float = _help(
        "score gap K for DPO and RM pairs in the first iteration", default=2.0, ge=0
    )
    min_gap_later: float = _help(
        "score gap K for every kind after the first iteration", default=1.0, ge=0
    )
    min_label_strength: float = _help(
        "label strength a battle judged without scores needs (five labels: 2 for A>>B, 1 for "
        "A>B, the mean of both games; pair labels: 1); 2 keeps only significant wins",
        default=1.0,
        ge=0,
        le=2,
    )
    accumulate: bool = _help(
        "train on this round's examples plus every earlier round's of the same kind", default=True
    )
    sft_rule: Literal["arena", "refine"] = _help(
        "the SFT target of a battle the champion lost by the SFT gap: arena (Arena Learning: "
        "the winning reference's answer) or refine (a reference is asked to correct the "
        "champion's losing answer, and its correction is the target; tasks/refine.py)",
        default="arena",
    )
    refine_with: str | None = _help(
        "sft_rule refine: the `name` of the reference that corrects the champion's answers; "
        "null: the reference that won the battle",
        default=None,
    )
    refine_prompt_version: str = _help(
        "sft_rule refine: version of the correction prompt (evaluators/refine_prompts.py)",
        default="refine-v1",
    )

    @field_validator("refine_prompt_version")
    @classmethod
    def _check_refine_prompt_version(cls, version: str) -> str:
        from flywheel.evaluators.refine_prompts import REFINE_PROMPTS

        if version not in REFINE_PROMPTS:
            raise field_problem(
                "not a known refine prompt version",
                f"use one of {', '.join(sorted(REFINE_PROMPTS))}",
            )
        return version


class StageTrainingConfig(Section):
    learning_rate: float = _help("optimizer learning rate", default=5e-4, gt=0)
    num_train_epochs: float = _help("passes over the mined examples", default=2.0, gt=0)
    max_steps: int = _help(
        "stop after this many steps; -1 means use num_train_epochs", default=-1, ge=-1
    )
    batch_size: int = _help("examples per device batch", default=16, gt=0)
    max_length: int = _help("tokens per training sequence", default=256, gt=0)
    min_examples: int = _help("fewer mined examples than this skips the stage", default=8, ge=1)
    beta: float = _help("DPO beta, or the KL coefficient to the champion for RL", default=0.1, ge=0)
    chosen_nll_weight: float = _help(
        "DPO only: weight of the NLL loss on chosen answers added to the DPO loss (RPO); 0: none",
        default=0.0,
        ge=0,
    )
    num_generations: int = _help("RL completions per prompt (GRPO group size)", default=4, ge=2)
    gradient_accumulation_steps: int = _help(
        "batches whose gradients are summed before each optimizer step", default=1, ge=1
    )
    gradient_checkpointing: bool = _help(
        "recompute activations in the backward pass (less memory, ~30% slower)", default=False
    )


class RewardModelTrainingConfig(StageTrainingConfig):
    """`training.rm`: a stage's settings plus the reward-model ensemble's."""

    ensemble_size: int = _help(
        "reward models fit on bootstrap resamples of the mined pairs; 1: one model on every "
        "pair (the RL reward is then the ensemble's normalised mean minus "
        "training.rl.disagreement_penalty x its spread across models)",
        default=1,
        ge=1,
        le=16,
    )
    heldout_fraction: float = _help(
        "share of the mined reward-model pairs held out (seeded) to measure each model's and the "
        "ensemble's pair accuracy, recorded with the training run; 0: none held out",
        default=0.0,
        ge=0,
        lt=0.5,
    )


class RLTrainingConfig(StageTrainingConfig):
    """`training.rl`: a stage's settings plus the ensemble reward's penalty and early stop."""

    disagreement_penalty: float = _help(
        "RL reward = the ensemble's normalised mean minus this x the ensemble's std across "
        "models (needs training.rm.ensemble_size >= 2 to have an effect)",
        default=0.0,
        ge=0,
    )
    early_stop_disagreement_factor: float | None = _help(
        "stop RL when the ensemble's disagreement on the policy's samples rises above this x "
        "its starting value (needs training.rm.ensemble_size >= 2); null: never",
        default=None,
        gt=1,
    )
    early_stop_window: int = _help(
        "batches averaged for the starting disagreement (the first ones) and the current one "
        "(the latest ones); one batch of completions is noisy",
        default=3,
        ge=1,
    )
    winrate_check_every: int = _help(
        "every this many RL steps (and once before RL), the policy answers `winrate_prompts` "
        "held-out prompts of the stage greedily and the judge compares them with the "
        "champion's answers, both orders; RL stops when the win rate falls more than "
        "`winrate_drop` below the best seen; 0: never (in-process launcher only)",
        default=0,
        ge=0,
    )
    winrate_prompts: int = _help(
        "prompts of the stage's slice held out of RL for the win-rate check (seeded; RL "
        "trains on the rest)",
        default=32,
        ge=1,
    )
    winrate_drop: float = _help(
        "stop RL when the judged win rate falls more than this below the best win rate seen "
        "(the first check, before RL, is the champion against itself: 0.5)",
        default=0.1,
        gt=0,
        le=1,
    )
    winrate_keep_best: bool = _help(
        "when the win-rate check stops RL, publish the policy of the best check instead of the "
        "one at the stop (keeps one CPU copy of the trainable weights of the best check)",
        default=True,
    )
    verifiable_reward_weight: float = _help(
        "w in RL reward = (1 - w) x reward model + w x checker, for prompts a skill checker "
        "can check (the checker's right/wrong as +1/-1, one std of the reward model's "
        "standardised scores); prompts without a checker get the reward model alone; 0: off "
        "(real data has no checker)",
        default=0.0,
        ge=0,
        le=1,
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


class TrainingConfig(Section):
    output_dir: str = _help(
        "where candidate checkpoints are written", default="runs/demo/models", min_length=1
    )
    seed: int = _help("training seed", default=0)
    sft: StageTrainingConfig = Field(default_factory=StageTrainingConfig)
    dpo: StageTrainingConfig = Field(
        default_factory=lambda: StageTrainingConfig(learning_rate=5e-5, beta=0.1)
    )
    rm: RewardModelTrainingConfig = Field(
        default_factory=lambda: RewardModelTrainingConfig(learning_rate=1e-4)
    )
    rl: RLTrainingConfig = Field(
        default_factory=lambda: RLTrainingConfig(learning_rate=2e-5, beta=0.05)
    )
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

    @model_validator(mode="after")
    def _check_ensemble_early_stop(self) -> TrainingConfig:
        if self.rl.early_stop_disagreement_factor is not None and self.rm.ensemble_size < 2:
            raise field_problem(
                "needs an ensemble: one reward model never disagrees with itself",
                "set training.rm.ensemble_size to 2 or more, or remove "
                "rl.early_stop_disagreement_factor",
                field="rl.early_stop_disagreement_factor",
                value=self.rl.early_stop_disagreement_factor,
            )
        return self

    @model_validator(mode="after")
    def _check_winrate_launcher(self) -> TrainingConfig:
        """The win-rate check calls the judge and stores its calls in the warehouse from the
        training process; `accelerate launch` ranks have neither (refused before the run)."""
        if self.rl.winrate_check_every > 0 and self.launcher != "in_process":
            raise field_problem(
                "needs training.launcher: in_process (the check calls the judge and writes "
                "its calls to the warehouse from the training process; accelerate's rank "
                "processes do neither)",
                "set training.launcher: in_process, or rl.winrate_check_every: 0",
                field="rl.winrate_check_every",
                value=self.rl.winrate_check_every,
            )
        return self

    @model_validator(mode="after")
    def _check_rl_groups(self) -> TrainingConfig:
        """TRL's GRPO rule: the generation batch (per_device_train_batch_size x processes x
        steps_per_generation; llm/trainers.py leaves one step per generation, so `rl.batch_size`
        completions per process) holds whole groups of `num_generations` completions."""
        batch_size, group_size = self.rl.batch_size, self.rl.num_generations
        if batch_size % group_size == 0:
            return self
        divisors = [str(n) for n in range(2, batch_size + 1) if batch_size % n == 0][:8]
        next_multiple = -(-batch_size // group_size) * group_size
        larger = f"training.rl.batch_size to a multiple of {group_size}, such as {next_multiple}"
        raise field_problem(
            f"GRPO's generation batch (training.rl.batch_size = {batch_size} completions) must "
            f"hold whole groups of {group_size} completions per prompt, and {batch_size} is not "
            f"a multiple of {group_size}",
            f"set training.rl.num_generations to a divisor of {batch_size} "
            f"({', '.join(divisors)}), or {larger}"
            if divisors
            else f"set {larger}",
            field="rl.num_generations",
            value=group_size,
        )


class EvaluationConfig(Section):
    promotion_margin: float = _help(
        "promote only when the win-rate CI lower bound exceeds 0.5 + margin",
        default=0.0,
        ge=0,
        lt=0.5,
    )
    ci: float = _help("confidence level of every interval", default=0.95, gt=0, lt=1)
    bootstrap_samples: int = _help("bootstrap resamples for intervals", default=1000, gt=0)
    anchor_model: str | None = _help(
        "model whose Bradley-Terry rating is fixed (e.g. ref:strong); default: the first reference",
        default=None,
    )
    anchor_rating: float = _help("rating of the anchor model on the Elo scale", default=1000.0)
    seed: int = _help("seed of the bootstraps", default=0)
    approval: Literal["auto", "manual"] = _help(
        "auto promotes a passing candidate at once; manual pauses the run until a person "
        "approves it in the Prefect UI (reject, or no answer in time, keeps the champion)",
        default="auto",
    )
    approval_timeout_s: int = _help(
        "manual approval: seconds to wait for the answer; then the champion is kept and the "
        "reason says the approval timed out",
        default=86400,
        gt=0,
    )


class SandboxModelConfig(Section):
    role: Literal["reference", "judge"] = _help(
        "what this sandbox model plays", default="reference"
    )
    accuracy: float = _help(
        "share of prompts answered right, per skill unless overridden", default=0.95, ge=0, le=1
    )
    skill_accuracy: dict[str, float] = _help(
        "per-skill accuracy overriding `accuracy` (skill name -> 0..1)", default_factory=dict
    )
    verbosity: Literal["terse", "normal", "verbose"] = _help(
        "length of the answer's prose", default="normal"
    )
    latency_ms: float = _help("mean reply latency in ms", default=0.0, ge=0)
    latency_jitter_ms: float = _help(
        "uniform jitter added to the latency, in ms", default=0.0, ge=0
    )
    rate_429: float = _help(
        "share of requests answered 429 with Retry-After", default=0.0, ge=0, le=1
    )
    rate_500: float = _help("share of requests answered 500", default=0.0, ge=0, le=1)
    rate_timeout: float = _help(
        "share of requests answered slower than the client timeout", default=0.0, ge=0, le=1
    )
    score_noise: float = _help(
        "judge: std of the noise added to each 1-10 score", default=0.5, ge=0
    )
    position_bias: float = _help("judge: score bonus of the answer shown first", default=0.3, ge=0)
    accepts_response_format: bool = _help(
        "judge: answers `response_format` (JSON schema) requests; false refuses them with "
        "HTTP 400, as endpoints without structured output do",
        default=True,
    )
    malformed_rate: float = _help(
        "judge: share of replies without a parseable verdict", default=0.01, ge=0, le=1
    )


class SandboxConfig(Section):
    seed: int = _help(
        "seed of every sandbox reply (noise is seeded from request content)", default=0
    )
    host: str = _help("address the embedded server binds", default="127.0.0.1")
    port: int = _help("port of the embedded server; 0 picks a free one", default=0, ge=0, le=65535)
    timeout_delay_s: float = _help("how long an injected timeout reply stalls", default=60.0, gt=0)
    task_difficulty: int | None = _help(
        "difficulty (1-3) of the generated skill tasks (pool and student); null draws 1-3",
        default=None,
        ge=1,
        le=3,
    )
    models: dict[str, SandboxModelConfig] = _help(
        "sandbox models by name (`model` field of the endpoints that point at the sandbox)",
        default_factory=dict,
    )


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

    @model_validator(mode="after")
    def _check_cross_fields(self) -> Config:
        names = [ref.name for ref in self.references]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"reference names must be unique; repeated: {duplicated}")
        for endpoint in self.sandbox_endpoints():
            if endpoint.model not in self.sandbox.models:
                raise ValueError(
                    f"endpoint {endpoint.name!r} uses the sandbox but sandbox.models has no "
                    f"{endpoint.model!r}; add it under sandbox.models or change its model"
                )
        self._check_anchor_model()
        self._check_refine_with()
        self._check_winrate_prompts()
        return self

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
