"""`references` and `judge`: the OpenAI-compatible endpoints a round calls (`EndpointConfig`,
with the backoff of its retries, `RetryConfig`), the judge with its prompt version and panel
(`JudgeConfig`), and which battles it judges (`SelectionConfig`, `judge.selection`).

An endpoint whose `base_url` is `sandbox` is served by the embedded sandbox: when the sandbox
starts, the run's config is resolved once (`resolve_sandbox_endpoints`) into endpoints that
carry its live URL (`EndpointConfig.url`). The configured `base_url`, never the live port, stays
what identifies the endpoint (call ids, the config's fingerprint)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import PrivateAttr, field_validator, model_validator

from flywheel.config.base import ConfigError, Section, _help
from flywheel.config.checks import SANDBOX_URL, field_problem, url_problem

if TYPE_CHECKING:
    from flywheel.config.root import Config


class RetryConfig(Section):
    """`retry` of an endpoint: the wait before each retry of a transient failure (429, 5xx,
    timeout); how many retries is the endpoint's `max_retries`."""

    base_delay_s: float = _help(
        "seconds before the first retry, doubled for each later one (each wait drawn between "
        "half and all of it); 0 retries at once",
        default=0.5,
        ge=0,
    )
    max_delay_s: float = _help(
        "the longest wait between two attempts, however many retries came before",
        default=20.0,
        ge=0,
    )
    max_retry_after_s: float = _help(
        "the longest `Retry-After` honoured; a server asking for a longer wait ends the call as "
        "an error at once",
        default=120.0,
        ge=0,
    )


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
    retry: RetryConfig = _help(
        "the backoff between those retries (never part of a call's id)",
        default_factory=RetryConfig,
    )
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

    # the running sandbox's URL, for base_url `sandbox` (set by `at_sandbox`; never dumped)
    _sandbox_url: str | None = PrivateAttr(default=None)

    @property
    def model_id(self) -> str:
        return f"ref:{self.name}"

    def at_sandbox(self, sandbox_url: str) -> Self:
        """This endpoint, calling the running sandbox at `sandbox_url` if it uses the sandbox."""
        if self.base_url != SANDBOX_URL:
            return self
        resolved = self.model_copy()
        resolved._sandbox_url = sandbox_url
        return resolved

    @property
    def url(self) -> str:
        """Where requests go: `base_url`, or for `sandbox` the running sandbox's URL."""
        if self.base_url != SANDBOX_URL:
            return self.base_url
        if self._sandbox_url is None:
            raise ValueError(
                f"endpoint {self.name!r} uses the sandbox but no sandbox is running. Fix: start "
                "it (sandbox.server.start_sandbox) and resolve the config with its base_url "
                "(flywheel.config.resolve_sandbox_endpoints)."
            )
        return self._sandbox_url

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
    fit_replay_rows: int | None = _help(
        "those reward models learn from the last round's preference pairs and at most this "
        "many of older rounds' (newest round first, then the widest score gap), so the fit "
        "costs the same every night; null: every earlier pair",
        default=None,
        ge=0,
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
        "(evaluators/protocols/): v1 (1-10 scores), arena-hard-v1 (five labels "
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

    def at_sandbox(self, sandbox_url: str) -> Self:
        """The judge and its panel, each calling the running sandbox if it uses it."""
        panel = [member.at_sandbox(sandbox_url) for member in self.panel]
        return super().at_sandbox(sandbox_url).model_copy(update={"panel": panel})

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
        from flywheel.evaluators.protocols import JUDGE_PROMPTS

        if version not in JUDGE_PROMPTS:
            raise field_problem(
                "not a known judge prompt version",
                f"use one of {', '.join(sorted(JUDGE_PROMPTS))}",
            )
        return version


def resolve_sandbox_endpoints(config: Config, sandbox_url: str) -> Config:
    """The run's config with every endpoint whose base_url is `sandbox` (references, judge,
    judge panel, student.endpoint, evaluation.conversations.simulator, logs.classifier) calling the running
    sandbox at `sandbox_url`; what identifies them (base_url, call ids, the fingerprint) is
    unchanged."""
    student = config.student
    if student.endpoint is not None:
        student = student.model_copy(update={"endpoint": student.endpoint.at_sandbox(sandbox_url)})
    evaluation = config.evaluation
    conversations = evaluation.conversations
    if conversations.simulator is not None:
        simulator = conversations.simulator.at_sandbox(sandbox_url)
        conversations = conversations.model_copy(update={"simulator": simulator})
        evaluation = evaluation.model_copy(update={"conversations": conversations})
    logs = config.logs
    if logs.classifier is not None:
        logs = logs.model_copy(update={"classifier": logs.classifier.at_sandbox(sandbox_url)})
    return config.model_copy(
        update={
            "references": [ref.at_sandbox(sandbox_url) for ref in config.references],
            "judge": config.judge.at_sandbox(sandbox_url),
            "student": student,
            "evaluation": evaluation,
            "logs": logs,
        }
    )
