"""What one judge step did (`JudgeReport`): the plan's counts, the games judged, the battles
written and their outcomes, the verifier's agreement; one summary line for the logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from flywheel.figures import count, usd

SET_NAMES = {"train": "train battles", "eval": "eval set"}  # battles.purpose -> its set


@dataclass
class JudgeReport:
    """What one judge step did. Outcomes cover every battle of the pairs, stored before or now."""

    round_id: int
    purpose: str
    n_pairs: int = 0
    n_battles_stored: int = 0  # decided before this run, not judged again
    n_missing_answers: int = 0  # pairs skipped: one side has no answer
    n_planned_games: int = 0  # games without a stored judgment
    n_cached: int = 0  # of those, answered by the call cache
    n_to_send: int = 0  # games whose request is not in the call cache
    n_calls_sent: int | None = None  # the calls those games cost (identical games share one)
    estimated_cost_usd: float = 0.0  # upper bound for the games to send
    cost_usd: float = 0.0
    n_judged: int = 0  # games parsed this run (sent or cached)
    n_unparsed: int = 0  # of those, no usable verdict
    n_errors: int = 0  # games whose call failed after the retries
    n_battles_written: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    n_verified: int = 0
    n_verifier_agree: int = 0
    n_checker_decisive: int = 0  # verified battles where exactly one answer is right
    n_checker_agree: int = 0  # of those, the judge's outcome names the right one
    n_prompts_cut: int = 0  # battles sent this run whose conversation lost its oldest turns
    n_format_refused: int = 0  # JSON games asked again as text: the endpoint refused the format
    n_decisive: int = 0  # win or loss battles of the round and purpose, stored before or now
    n_decisive_without_gap: int = 0  # of those, no score gap (scores missing or dropped)
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        outcomes = ", ".join(f"{k} {count(v)}" for k, v in sorted(self.outcomes.items()))
        return (
            f"round {self.round_id} judge on the {SET_NAMES.get(self.purpose, self.purpose)}: "
            f"{count(self.n_pairs)} pairs, {count(self.n_battles_stored)} already decided, "
            f"{count(self.n_planned_games)} games planned ({count(self.n_cached)} answered from "
            f"the call cache, {count(self.n_to_send)} sent{self._calls_note()}, est. "
            f"{usd(self.estimated_cost_usd)}, spent {usd(self.cost_usd)}); "
            f"{count(self.n_judged)} judged, {count(self.n_unparsed)} unparsed, "
            f"{count(self.n_errors)} errors; {count(self.n_prompts_cut)} conversations cut to "
            f"the judge's context; battles: {outcomes or 'none'}; "
            f"{count(self.n_decisive_without_gap)} of {count(self.n_decisive)} decisive battles "
            f"without a score gap; the judge agrees with the checker on "
            f"{count(self.n_checker_agree)} of {count(self.n_checker_decisive)} battles where "
            "exactly one answer is right"
        )

    def _calls_note(self) -> str:
        """How many calls the games sent cost, when fewer: identical games share one call."""
        if self.n_calls_sent is None or self.n_calls_sent >= self.n_to_send:
            return ""
        return f" in {count(self.n_calls_sent)} calls, identical games sharing one"
