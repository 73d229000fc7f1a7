"""The simulated users of a round (`evaluation.conversations`): personas over the held-out eval
prompts and, with `goals` logs or both, over logged conversations (evaluators/persona_goals.py).

A logged opening is decontaminated against the training slices as the eval prompts are: it
must not be in a slice (`sim_log_openings.sql`), nor overlap a sliced pool prompt by the
pool's contamination check (a shared long n-gram or MinHash similarity, pool/index.py); and once
drawn, the pool prompts that overlap it and no slice has drawn yet (itself included) leave the
training pool (status contaminated, `contaminated_by` the opening), so no later slice trains
on the conversations the gate is judged on.
"""

from __future__ import annotations

import json

import pandas as pd

from flywheel.config import Config
from flywheel.evaluators.persona_goals import GoalSource, LoggedOpening, draw_goal_personas
from flywheel.evaluators.personas import Persona
from flywheel.logs import step_logger
from flywheel.pool.eval_set import eval_prompt_ids
from flywheel.pool.index import (
    PromptIndex,
    add_to_index,
    find_pool_overlaps,
    lsh_params_for,
    mark_contaminated,
    texts_of,
)
from flywheel.warehouse.reads import load_prompts
from flywheel.warehouse.store import connect_warehouse, read_query, transaction


def goal_source(config: Config) -> GoalSource:
    """Where the personas' goals come from: `evaluation.conversations.goals`."""
    return config.evaluation.conversations.goals


def logged_openings(config: Config) -> list[LoggedOpening]:
    """Every logged opening not in a training slice (`sim_log_openings.sql`)."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("sim_log_openings")).fetchall()
    return [LoggedOpening(cid, pid, next_turn, bool(neg)) for cid, pid, next_turn, neg in rows]


def opening_overlaps(config: Config, prompt_ids: list[str]) -> pd.DataFrame:
    """(prompt_id, eval_prompt_id, slice_id): each active pool prompt overlapping an opening
    (`eval_prompt_id`, the pool's name for what is held out), and its slice (null: none)."""
    if not prompt_ids:
        return pd.DataFrame(columns=["prompt_id", "eval_prompt_id", "slice_id"])
    prompts = load_prompts(config.warehouse, prompt_ids)
    params = lsh_params_for(config)
    index = PromptIndex.empty("eval")
    messages = [json.dumps(prompts[pid].messages) for pid in prompt_ids]
    add_to_index(index, params, config, list(prompt_ids), texts_of(messages))
    overlaps = find_pool_overlaps(config, params, index, skip=set())
    with connect_warehouse(config.warehouse) as con:
        wanted = [sorted(set(overlaps["prompt_id"]))]
        slices = dict(con.execute(read_query("prompts_slices_of"), wanted).fetchall())
    return overlaps.assign(slice_id=[slices.get(pid) for pid in overlaps["prompt_id"]])


def decontaminated(openings: list[LoggedOpening], overlaps: pd.DataFrame) -> list[LoggedOpening]:
    """The openings no sliced pool prompt overlaps."""
    sliced = overlaps[overlaps["slice_id"].notna()]
    contaminated = set(sliced["eval_prompt_id"])
    return [o for o in openings if o.prompt_id not in contaminated]


def hold_out(config: Config, personas: list[Persona], overlaps: pd.DataFrame) -> None:
    """The unsliced pool prompts overlapping a drawn logged opening leave the training pool."""
    drawn = {p.prompt_id for p in personas if p.goal_source == "logs"}
    held = overlaps[overlaps["slice_id"].isna() & overlaps["eval_prompt_id"].isin(drawn)]
    if held.empty:
        return
    with connect_warehouse(config.warehouse) as con, transaction(con):
        mark_contaminated(con, held[["prompt_id", "eval_prompt_id"]].reset_index(drop=True))


def round_personas(config: Config, source: GoalSource | None = None) -> list[Persona]:
    """The personas of `evaluation.conversations` (module doc); `source` overrides `goals`."""
    settings = config.evaluation.conversations
    source = source or goal_source(config)
    prompt_ids = eval_prompt_ids(config)
    prompts = load_prompts(config.warehouse, prompt_ids)
    texts = [(pid, prompts[pid].prompt_text) for pid in prompt_ids]
    openings: list[LoggedOpening] = []
    overlaps = opening_overlaps(config, [])
    if source != "eval":
        candidates = logged_openings(config)
        overlaps = opening_overlaps(config, [o.prompt_id for o in candidates])
        openings = decontaminated(candidates, overlaps)
        step_logger(__name__).info(
            "conversation goals from the logs: %d logged openings outside the training slices, "
            "%d of them overlapping a sliced prompt (left out)",
            len(candidates),
            len(candidates) - len(openings),
        )
    personas = draw_goal_personas(
        texts, openings, settings.personas, settings.n_conversations, settings.seed, source
    )
    hold_out(config, personas, overlaps)
    return personas
