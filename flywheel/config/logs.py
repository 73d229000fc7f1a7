"""`logs`: production conversations and their feedback read from users' log files
(`flywheel logs add`, and `paths` read at the start of every round)."""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import field_problem
from flywheel.config.endpoints import EndpointConfig

DEFAULT_SALT_ENV = "FLYWHEEL_USER_SALT"


class LogsConfig(Section):
    paths: list[str] = Field(
        default_factory=list,
        description="globs of log files (JSONL, .jsonl.gz, JSON array; ~ expanded, `**` "
        "recursive) read at the start of every round; a file read before adds only its new "
        "complete records ([]: none)",
    )
    source: str = _help(
        "source name of logged conversations and of their prompts in the pool",
        default="logs",
        min_length=1,
    )
    redact: bool = _help(
        "replace e-mail addresses, phone and card numbers and API keys in logged text before "
        "storing it (false: stored as logged)",
        default=True,
    )
    add_prompts: bool = _help(
        "logged users' opening prompts join the prompt pool (deduplicated, decontaminated "
        "against the eval set) so battles run on what users ask (false: logs only)",
        default=True,
    )
    user_salt_env: str = _help(
        "environment variable holding the secret salt of stored user-id hashes",
        default=DEFAULT_SALT_ENV,
        min_length=1,
    )
    user_salt: str | None = _help(
        "the salt, when the environment variable is unset (keep such a config private); "
        "null with the variable unset: a log with user ids is refused",
        default=None,
    )

    classify: bool = _help(
        "after each ingest (`flywheel logs add` and a round's logs step) the classifier reads "
        "every (answer, user's next turn) of the logged conversations not read yet and stores "
        "the implicit feedback it finds, one call per new pair through the call cache (false: "
        "only `flywheel logs classify` does)",
        default=False,
    )
    classifier: EndpointConfig | None = _help(
        "the OpenAI-compatible endpoint that classifies the users' next turns (name, base_url, "
        "model, ...; `base_url: sandbox` for the sandbox's); null: the judge's endpoint",
        default=None,
    )
    classifier_prompt_version: str = _help(
        "version of the classifier prompt (evaluators/feedback_prompts.py); a new version reads "
        "every pair again and stores its labels beside the old version's",
        default="implicit-feedback-v1",
    )

    @field_validator("classifier_prompt_version")
    @classmethod
    def _check_classifier_version(cls, version: str) -> str:
        from flywheel.evaluators.feedback_prompts import CLASSIFIER_PROMPTS

        if version not in CLASSIFIER_PROMPTS:
            raise field_problem(
                "not a known classifier prompt version",
                f"use one of {', '.join(sorted(CLASSIFIER_PROMPTS))}",
            )
        return version

    def resolved_salt(self) -> str | None:
        """The salt of user-id hashes: the environment variable's value, else `user_salt`."""
        return os.environ.get(self.user_salt_env) or self.user_salt
