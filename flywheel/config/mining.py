"""`training.mining`: the rules that turn judged battles into SFT targets and preference pairs
(score gaps, label strength, arena or refine targets), and users' feedback into training rows
(the confidence an implicit label needs)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import field_problem


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
    kto_min_gap: float = _help(
        "score gap K for KTO examples in every iteration: a decisive battle at least this "
        "far apart labels its winner's answer desirable and its loser's undesirable (below "
        "the DPO gap too: KTO needs no pair); 0: every decisive battle",
        default=0.5,
        ge=0,
    )
    min_label_strength: float = _help(
        "label strength a battle judged without scores needs (five labels: 2 for A>>B, 1 for "
        "A>B, the mean of both games; pair labels: 1); 2 keeps only significant wins",
        default=1.0,
        ge=0,
        le=2,
    )
    accumulate: bool = _help(
        "train on this round's examples plus earlier rounds' of the same kind (all of them, "
        "or per stage at most `replay_rows`)",
        default=True,
    )
    replay_rows: dict[str, int] = _help(
        "accumulate: per stage (as named in schedule.stages), at most this many rows from "
        "earlier rounds beside the round's own (newest round first, then the widest score "
        "gap), so a round's cost stays flat over many nights; 0: the round's rows only; a "
        "stage left out replays every earlier row",
        default_factory=dict,
    )
    feedback_min_confidence: float = _help(
        "users' feedback: the classifier confidence an implicit label (read from the user's "
        "next turn) needs to count as positive or negative; explicit feedback (a thumb, "
        "score, vote or correction in the log) always counts and wins over implicit on the "
        "same answer; 0: every parsed implicit label, 1: only fully confident ones",
        default=0.7,
        ge=0,
        le=1,
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

    @field_validator("replay_rows")
    @classmethod
    def _check_replay_rows(cls, caps: dict[str, int]) -> dict[str, int]:
        from flywheel.llm.stages.registry import STAGE_NAMES

        unknown = [name for name in caps if name not in STAGE_NAMES]
        if unknown:
            raise field_problem(
                f"names no training stage: {', '.join(unknown)}",
                f"key it by a stage of schedule.stages ({', '.join(STAGE_NAMES)})",
            )
        negative = [name for name, cap in caps.items() if cap < 0]
        if negative:
            raise field_problem(
                f"a negative cap for {', '.join(negative)}",
                "give 0 (the round's rows only) or more, or leave the stage out (no cap)",
            )
        return caps

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
