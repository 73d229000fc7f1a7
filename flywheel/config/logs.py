"""`logs`: production conversations and their feedback read from users' log files
(`flywheel logs add`, and `paths` read at the start of every round)."""

from __future__ import annotations

import os

from pydantic import Field

from flywheel.config.base import Section, _help

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

    def resolved_salt(self) -> str | None:
        """The salt of user-id hashes: the environment variable's value, else `user_salt`."""
        return os.environ.get(self.user_salt_env) or self.user_salt
