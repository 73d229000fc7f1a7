"""`evaluation`: the A/B gate a candidate must pass to be promoted (intervals, Bradley-Terry
anchor, automatic or manual approval, the general-set limits, the objective guard), and what it
compares: single held-out prompts, conversations with a simulated user
(`evaluation.conversations`), or both (`mode`, `combine`)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import field_problem
from flywheel.config.endpoints import EndpointConfig
from flywheel.evaluators.persona_goals import GoalSource

EvaluationMode = Literal["single_turn", "conversations", "both"]
Combine = Literal["both_must_pass", "conversations_only_gates"]
PersonaKind = Literal["plain", "follow_up", "pushback", "correction"]
PERSONA_KINDS: tuple[PersonaKind, ...] = ("plain", "follow_up", "pushback", "correction")


class ConversationsConfig(Section):
    """`evaluation.conversations`: a simulated user talks with champion and candidate."""

    simulator: EndpointConfig | None = _help(
        "the OpenAI-compatible endpoint that plays the user (`base_url: sandbox` for the "
        "sandbox's simulated users); required by mode conversations and both",
        default=None,
    )
    simulator_prompt_version: str = _help(
        "version of the simulated user's prompt (evaluators/simulator_prompts.py)",
        default="sim-user-v1",
    )
    judge_prompt_version: str = _help(
        "version of the conversation judge prompt (evaluators/protocols/conversation.py); "
        "the judge and its panel are `judge`'s",
        default="conv-five-labels-v1",
    )
    n_conversations: int = _help(
        "conversations per candidate, one per held-out prompt it opens with (at most the "
        "eval set's size); 20 or more for an interval that can pass the gate",
        default=40,
        ge=1,
    )
    max_turns: int = _help(
        "user turns per conversation, the opening included (it ends sooner when the user "
        "says it is done or gives up)",
        default=3,
        ge=2,
        le=12,
    )
    personas: list[PersonaKind] = _help(
        "persona kinds drawn in turn: plain (done after the answer), follow_up (a second "
        "task in turn 1's format), pushback (questions the answer), correction (says a wrong "
        "answer is wrong)",
        default_factory=lambda: list(PERSONA_KINDS),
        min_length=1,
    )
    goals: GoalSource = _help(
        "where each persona's opening and goal come from: eval (held-out eval prompts), logs "
        "(logged conversations' openings and the logged user's reaction to the first answer: "
        "negative feedback -> correction, a next turn -> follow_up, else plain; openings in a "
        "training slice or overlapping one are left out, and a drawn one leaves the training "
        "pool; fewer than n_conversations logged: the rest from eval prompts), both (up to "
        "half from the logs)",
        default="eval",
    )
    seed: int = _help(
        "seed of the persona draw and of the simulator's requests (the same for champion and "
        "candidate)",
        default=0,
    )

    @model_validator(mode="after")
    def _check_versions(self) -> ConversationsConfig:
        from flywheel.evaluators.protocols import CONVERSATION_PROMPTS
        from flywheel.evaluators.simulator_prompts import SIM_USER_PROMPTS

        checks = (
            ("simulator_prompt_version", SIM_USER_PROMPTS),
            ("judge_prompt_version", CONVERSATION_PROMPTS),
        )
        for name, known in checks:
            if getattr(self, name) not in known:
                raise field_problem(
                    "is not a known version",
                    f"use one of {', '.join(sorted(known))}",
                    field=name,
                    value=getattr(self, name),
                )
        return self


class EvaluationConfig(Section):
    mode: EvaluationMode = _help(
        "what the A/B compares: single_turn (answers to held-out prompts), conversations "
        "(whole conversations with a simulated user, `conversations`), or both (decided by "
        "`combine`)",
        default="single_turn",
    )
    combine: Combine | None = _help(
        "mode both only: both_must_pass (each win rate's CI lower bound above 0.5 + margin) "
        "or conversations_only_gates (single turn reported, not gating); null: both_must_pass",
        default=None,
    )
    conversations: ConversationsConfig = _help(
        "the simulated-user conversations of mode conversations and both",
        default_factory=ConversationsConfig,
    )
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
    general_check: bool = _help(
        "measure champion and candidate on the held-out general set (mean NLL of its good "
        "answers, share of replies collapsing into `Answer: X`) every round where the student "
        "has a local checkpoint; false: not measured, and the general_max_* limits cannot apply",
        default=True,
    )
    general_max_nll_increase: float | None = _help(
        "refuse a candidate whose general-set NLL is more than this share above the champion's "
        "(0.05: 5% higher; 0: any rise); null: reported only",
        default=None,
        ge=0,
    )
    general_max_collapse_share: float | None = _help(
        "refuse a candidate whose share of general-set replies collapsing into the answer "
        "format is above this (0.05: more than 1 in 20; 0: any); null: reported only",
        default=None,
        ge=0,
        le=1,
    )

    general_max_nll_increase_from_first: float | None = _help(
        "refuse a candidate whose general-set NLL is more than this share above the FIRST "
        "champion's (the model round 1 started from), so small rises under "
        "general_max_nll_increase cannot add up over rounds (0.05: 5%); null: not applied",
        default=None,
        ge=0,
    )
    objective_set: str | None = _help(
        "JSONL of your own checkable prompts, one object a line: `prompt` (or `question`, or "
        '`messages`) and `answer`, the expected final answer ({"prompt": "What is 3 + 4?", '
        '"answer": "7"}; GSM8K\'s `#### 7` counts as 7), answered greedily from local '
        "checkpoints; null: the sandbox's checkers on the held-out prompts",
        default=None,
    )
    objective_max_drop: float | None = _help(
        "refuse a candidate whose accuracy on the objective set (objective_set, or the "
        "sandbox's checkers) is more than this below the champion's (0.05: five points; 0: "
        "any drop); where no objective set exists the decision says the guard cannot apply; "
        "null: accuracies reported only",
        default=0.05,
        ge=0,
        lt=1,
    )

    @property
    def gates_on(self) -> tuple[str, ...]:
        """The A/B results the promotion gate reads: `single_turn`, `conversations` or both."""
        if self.mode != "both":
            return (self.mode,)
        if self.combine == "conversations_only_gates":
            return ("conversations",)
        return ("single_turn", "conversations")

    @model_validator(mode="after")
    def _check_mode(self) -> EvaluationConfig:
        if self.combine is not None and self.mode != "both":
            raise field_problem(
                f"combines two A/B results, but mode {self.mode} has one",
                "set mode: both, or remove combine",
                field="combine",
                value=self.combine,
            )
        if self.mode != "single_turn" and self.conversations.simulator is None:
            raise field_problem(
                f"mode {self.mode} needs a simulated user, but none is set",
                "set evaluation.conversations.simulator (an endpoint: name, base_url, model), "
                "or mode: single_turn",
                field="conversations.simulator",
                value=None,
            )
        return self

    @model_validator(mode="after")
    def _check_objective_set(self) -> EvaluationConfig:
        if self.objective_set is None:
            return self
        from flywheel.pool.objective_set import ObjectiveSetError, read_objective_set

        try:
            read_objective_set(self.objective_set)
        except ObjectiveSetError as e:
            raise field_problem(
                e.problem, e.fix, field="objective_set", value=self.objective_set
            ) from e
        return self

    @model_validator(mode="after")
    def _check_general_limits(self) -> EvaluationConfig:
        if self.general_check:
            return self
        limits = (
            "general_max_nll_increase",
            "general_max_collapse_share",
            "general_max_nll_increase_from_first",
        )
        for name in limits:
            if getattr(self, name) is not None:
                raise field_problem(
                    "is a limit on the general set, but general_check is false, so nothing "
                    "is measured to apply it to",
                    f"set general_check: true, or {name}: null",
                    field=name,
                    value=getattr(self, name),
                )
        return self
