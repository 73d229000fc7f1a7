"""The checkers' verdicts on one round's A/B, prompt by prompt: on how many held-out prompts only
the candidate was right and on how many only the champion was, and a one-sided exact sign test
of the candidate's lead on those prompts (the prompts both got right or both wrong say nothing
about which is better). The accuracies bench_learning.py reports come from the same answers and
verdicts (tasks/objective_check.py's `checked_verdicts`); this pairs them."""

from __future__ import annotations

import math

import duckdb

from flywheel.tasks.objective_check import checked_verdicts
from flywheel.warehouse.store import read_query


def sign_test_p(only_candidate_right: int, only_champion_right: int) -> float | None:
    """P(at least `only_candidate_right` of the discordant prompts go to the candidate) when
    each is a fair coin; None when no prompt tells them apart."""
    n = only_candidate_right + only_champion_right
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(only_candidate_right, n + 1))
    return tail / 2**n


def discordant_prompts(
    con: duckdb.DuckDBPyConnection, candidate: str, champion: str
) -> tuple[int, int]:
    """(only the candidate right, only the champion right) over the held-out prompts both
    answered that a checker can check."""
    params = {"candidate": candidate, "champion": champion}
    rows = con.execute(read_query("objective_heldout_answers"), params).fetchall()
    verdicts = checked_verdicts(rows)
    only_candidate = sum(1 for c, h in verdicts if c and not h)
    only_champion = sum(1 for c, h in verdicts if h and not c)
    return only_candidate, only_champion
