"""Reads the answer and judge steps share: stored prompts and stored answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from flywheel.warehouse.store import WarehouseSettings, connect_warehouse, read_query


@dataclass(frozen=True)
class PromptRow:
    """A stored prompt: its id, chat messages and normalised last-turn text."""

    prompt_id: str
    messages: list[dict[str, str]]
    prompt_text: str


def load_prompts(warehouse: WarehouseSettings, prompt_ids: Sequence[str]) -> dict[str, PromptRow]:
    """The stored prompts by id; an id that is not stored is an error."""
    wanted = sorted(set(prompt_ids))
    with connect_warehouse(warehouse) as con:
        rows = con.execute(read_query("battles_prompts"), [wanted]).fetchall()
    found = {pid: PromptRow(pid, json.loads(messages), text) for pid, messages, text in rows}
    missing = [pid for pid in wanted if pid not in found]
    if missing:
        raise ValueError(
            f"{len(missing)} prompt ids are not in the warehouse (first: {missing[0]}); "
            "draw prompts (tasks/draw.py) before answering them"
        )
    return found


def load_responses(
    warehouse: WarehouseSettings,
    prompt_ids: Sequence[str],
    model_ids: Sequence[str],
    sample_idx: int = 0,
) -> dict[tuple[str, str], tuple[str, str]]:
    """Stored answers: (prompt_id, model_id) -> (response_id, text), for one sample index."""
    with connect_warehouse(warehouse) as con:
        rows = con.execute(
            read_query("battles_responses"), [sorted(set(prompt_ids)), sorted(set(model_ids))]
        ).fetchall()
    return {
        (prompt_id, model_id): (response_id, text)
        for response_id, prompt_id, model_id, sample, text in rows
        if sample == sample_idx
    }
