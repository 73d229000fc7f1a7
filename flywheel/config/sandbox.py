"""`sandbox`: settings of the embedded offline sandbox only (its seeded reference, judge and
student models, injected faults, the server's address). Nothing here configures a real
endpoint; an endpoint uses the sandbox when its `base_url` is `sandbox`."""

from __future__ import annotations

from typing import Literal

from flywheel.config.base import Section, _help


class SandboxModelConfig(Section):
    role: Literal["reference", "judge", "user"] = _help(
        "what this sandbox model plays: reference (answers; also a served student), judge, "
        "or user (the simulated user of evaluation.conversations)",
        default="reference",
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
    caves_to_pushback: float = _help(
        "reference: share of right answers given up for a wrong one when the user pushes back "
        "(a planted conversation fault)",
        default=0.0,
        ge=0,
        le=1,
    )
    forgets_constraint: float = _help(
        "reference: share of follow-up questions answered without the answer format asked "
        "for in the first turn (committing to no answer; a planted conversation fault)",
        default=0.0,
        ge=0,
        le=1,
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
