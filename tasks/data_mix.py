"""The data mix of a stage's training rows (`training.mix`): the share of battle, refine and
feedback rows it trains on, capped deterministically, and what the mix came to.

Without a mix every row is kept. With one, the rows are the largest set whose counts per origin
match the shares: N = min over origins with a share > 0 of (rows of that origin / share), then
round(share * N) rows of each origin (an origin with share 0, or not named, gives none). An
asked origin with no rows makes N = 0: nothing to train on, rather than another mix than asked.
Within an origin the round's own rows come first, then earlier rounds' (replay); ties are
ordered by a hash of (seed, round, row), so a rerun keeps the same rows.

Pure: standard library only.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ORIGIN = "origin"  # the column each exported row carries for the mix (removed after)
ROUND = "round_id"


@dataclass(frozen=True)
class MixReport:
    """What a stage's rows came to per origin: asked (the shares; None: no mix set), available
    (rows there were) and got (rows kept)."""

    asked: dict[str, float] | None
    available: dict[str, int]
    got: dict[str, int]

    def describe(self) -> dict[str, Any]:
        """The mix recorded with the training run (`hyperparams.mix`)."""
        return {"asked": self.asked, "available": self.available, "got": self.got}

    def missing(self) -> list[str]:
        """Origins the mix asks a share of that had no rows at all."""
        asked = self.asked or {}
        return [
            origin
            for origin, share in asked.items()
            if share > 0 and not self.available.get(origin)
        ]


def quotas(asked: Mapping[str, float], available: Mapping[str, int]) -> dict[str, int]:
    """Rows to keep per origin: the largest total whose split matches the shares."""
    shared = {origin: share for origin, share in asked.items() if share > 0}
    if not shared:
        return {}
    total = min(math.floor(available.get(o, 0) / share + 1e-9) for o, share in shared.items())
    return {
        origin: min(available.get(origin, 0), math.floor(share * total + 0.5))
        for origin, share in shared.items()
    }


def _draw_key(seed: int, round_id: int, row: Mapping[str, Any]) -> tuple[bool, str]:
    """The round's own rows first, then a seeded hash of the row's content."""
    text = json.dumps(row, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(f"{seed}|{round_id}|{text}".encode()).hexdigest()
    return (row.get(ROUND) != round_id, digest)


def apply_mix(
    rows: list[dict[str, Any]], round_id: int, asked: Mapping[str, float] | None, seed: int
) -> tuple[list[dict[str, Any]], MixReport]:
    """The rows the mix keeps, in their order and without the origin and round columns, and
    the mix's report. `rows` each carry `origin` and `round_id`."""
    available = dict(sorted(Counter(row[ORIGIN] for row in rows).items()))
    if asked is None:
        kept_indices = set(range(len(rows)))
    else:
        keep = quotas(asked, available)
        by_origin: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_origin.setdefault(row[ORIGIN], []).append(i)
        kept_indices = set()
        for origin, indices in by_origin.items():
            ranked = sorted(indices, key=lambda i: _draw_key(seed, round_id, rows[i]))
            kept_indices.update(ranked[: keep.get(origin, 0)])
    kept = [rows[i] for i in sorted(kept_indices)]
    got = dict(sorted(Counter(row[ORIGIN] for row in kept).items()))
    report = MixReport(None if asked is None else dict(asked), available, got)
    return kept, report


def without_mix_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's columns only."""
    return [{k: v for k, v in row.items() if k not in (ORIGIN, ROUND)} for row in rows]
