"""Keeping what it knew: pure measures over the held-out general set (pool/general_set.py).

A model trained on the sandbox's skills can lose what it knew: a promoted candidate answered
"What is the capital of France?" with `Answer: France`. Two measures catch it:

- **collapse** (`collapses_into_answer_format`): a reply to an ordinary instruction collapses
  into the sandbox's answer format when it has an answer line (a line that starts, after
  optional spaces and markdown `**`/`#`, with `Answer:` or `Final answer:`, any case, as
  `evaluators.skills` reads them) and is short: at most `MAX_COLLAPSED_WORDS` words in all,
  not counting the `Answer:` labels. `Answer: France`, `Here is the result.\\nAnswer: Paris`
  collapse; a reply without an answer line never does, and neither does one with the content
  a general answer needs (more words). Long filler prose before an answer line is not counted
  as collapse: the NLL of the good answers sees it.
- **NLL** (`summarise_general_check`): the mean per-token negative log-likelihood of the good
  answers, over every answer token of the set (token-weighted).

The gate (`general_check_refusal`) compares a candidate with its champion under the
`evaluation.general_max_nll_increase` and `general_max_collapse_share` limits. None means
"not measured": never 0, and no limit is applied to a figure that is missing.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_COLLAPSED_WORDS = 12
_AT_LIMIT = 1e-9  # a figure exactly at its limit passes (2.1 / 2.0 - 1 is 0.05000000000000004)
_ANSWER_LABEL_RE = re.compile(
    r"^[\s#*]*(?:final\s+)?answer\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.IGNORECASE
)


@dataclass(frozen=True)
class GeneralSummary:
    """One model's figures on the general set: items, mean NLL per answer token, and the share
    of its greedy replies that collapse into the answer format (None: nothing measured)."""

    n_items: int
    mean_nll: float | None
    collapse_share: float | None


def collapses_into_answer_format(reply: str) -> bool:
    """True when the reply has an answer line and at most `MAX_COLLAPSED_WORDS` words besides
    the `Answer:` labels (see the module doc)."""
    lines = [line for line in reply.splitlines() if line.strip()]
    has_answer_line = False
    n_words = 0
    for line in lines:
        label = _ANSWER_LABEL_RE.match(line)
        if label is not None:
            has_answer_line = True
            line = line[label.end() :]
        n_words += len(line.split())
    return has_answer_line and n_words <= MAX_COLLAPSED_WORDS


def summarise_general_check(
    answer_nlls: Sequence[tuple[float, int]], replies: Sequence[str]
) -> GeneralSummary:
    """The figures from each item's (summed NLL of its answer tokens, number of those tokens)
    and each greedy reply. The mean NLL is token-weighted; None when no token was scored, and
    the collapse share is None when there are no replies."""
    n_tokens = sum(count for _, count in answer_nlls)
    mean_nll = sum(nll for nll, _ in answer_nlls) / n_tokens if n_tokens else None
    n_collapsed = sum(collapses_into_answer_format(reply) for reply in replies)
    collapse_share = n_collapsed / len(replies) if replies else None
    return GeneralSummary(
        n_items=max(len(answer_nlls), len(replies)),
        mean_nll=mean_nll,
        collapse_share=collapse_share,
    )


def nll_increase(candidate_nll: float | None, champion_nll: float | None) -> float | None:
    """The candidate's mean NLL relative to the champion's, minus 1 (0.05: 5% higher, worse);
    None when either is missing or the champion's is not positive."""
    if candidate_nll is None or champion_nll is None or champion_nll <= 0:
        return None
    return candidate_nll / champion_nll - 1.0


def general_check_refusal(
    candidate: GeneralSummary | None,
    champion: GeneralSummary | None,
    max_nll_increase: float | None,
    max_collapse_share: float | None,
) -> str | None:
    """Why the candidate is refused on the general set, or None when it passes every limit that
    is set and measured. A limit of None is not applied; nor is one whose figures are missing."""
    reasons: list[str] = []
    champion_nll = champion.mean_nll if champion is not None else None
    candidate_nll = candidate.mean_nll if candidate is not None else None
    increase = nll_increase(candidate_nll, champion_nll)
    if (
        max_nll_increase is not None
        and increase is not None
        and increase > max_nll_increase + _AT_LIMIT
    ):
        reasons.append(
            f"general-set NLL {candidate_nll:#.3g} is {increase:+.1%} against the champion's "
            f"{champion_nll:#.3g} (limit +{max_nll_increase:.1%}, "
            "evaluation.general_max_nll_increase)"
        )
    share = candidate.collapse_share if candidate is not None else None
    if (
        max_collapse_share is not None
        and share is not None
        and share > max_collapse_share + _AT_LIMIT
    ):
        reasons.append(
            f"a share of {share:.3f} of its general-set replies collapse into the answer "
            f"format (limit {max_collapse_share:.3f}, evaluation.general_max_collapse_share)"
        )
    return "; ".join(reasons) if reasons else None


def general_check_note(candidate: GeneralSummary | None, champion: GeneralSummary | None) -> str:
    """The general-set figures in words, for a decision's reason and the logs."""
    if candidate is None:
        return "general set not measured"

    def nll(summary: GeneralSummary | None) -> str:
        value = summary.mean_nll if summary is not None else None
        return "-" if value is None else f"{value:#.3g}"

    increase = nll_increase(candidate.mean_nll, champion.mean_nll if champion is not None else None)
    change = "" if increase is None else f" ({increase:+.1%})"
    share = "-" if candidate.collapse_share is None else f"{candidate.collapse_share:.3f}"
    return (
        f"general set: NLL {nll(candidate)} vs champion {nll(champion)}{change}, collapse {share}"
    )
