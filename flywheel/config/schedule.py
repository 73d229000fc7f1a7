"""`schedule`: the stage of each round in turn (the names in llm/stages/registry.py), how many
rounds a run takes, and the nightly cron of `flywheel serve`."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import cron_problem, field_problem, iana_timezones
from flywheel.llm.stages.registry import STAGE_NAMES

StageName = Literal[STAGE_NAMES]  # type: ignore[valid-type]


class ScheduleConfig(Section):
    stages: list[StageName] = _help(
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
