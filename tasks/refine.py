"""The "refine" SFT rule (`training.mining.sft_rule: refine`), called by the mine step: a
reference corrects the champion's losing answer, and its correction is the SFT target.

For each battle the SFT rule selected (`mine_sft.sql`: the champion lost by the gap K), the
reference `training.mining.refine_with` (default: the battle's winner) is sent the
conversation and the champion's answer in the correction prompt
(`evaluators/refine_prompts.py`). The calls go through `llm/calls.run_calls`: cached by call
id, stored in `llm_calls` with the round id, with the endpoint's concurrency and retries; each
example is written in the transaction of its call's row, so a rerun sends nothing twice and a
killed run resumes. The example records `target_source` refine and `target_call_id`, and
`v_sft_data` (training, `flywheel export --kind sft`) gives the call's reply as its target.

No made-up target and no fallback: a call that fails after its retries, or replies with
nothing, leaves its battle without an SFT example (the winner's answer is not used instead,
so every example of a refine round is a correction). Those battles are counted (failed,
empty), logged as a warning, and recorded in `rounds.n_sft_without_target`; the next mining of
the round (a rerun, or `flywheel run --retry-failed`) asks the failed calls again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from flywheel.config import Config, EndpointConfig
from flywheel.evaluators.refine_prompts import fit_refine_messages
from flywheel.llm.calls import CallBatchStats, run_calls, run_sync
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.warehouse.store import connect_warehouse, read_query
from flywheel.warehouse.writer import RowWriter


@dataclass
class RefineReport:
    """What one run of the refine rule did: n_selected = n_existing + n_refined + n_failed +
    n_empty."""

    n_selected: int = 0  # SFT battles the rule selected this round
    n_existing: int = 0  # their example was stored by an earlier run
    n_refined: int = 0  # examples written now (from the call cache or a new call)
    n_cached: int = 0  # of those, answered from the call cache (no request sent)
    n_failed: int = 0  # the call failed after its retries: no example (cause in llm_calls)
    n_empty: int = 0  # the reference replied with nothing: no example
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def n_without_target(self) -> int:
        return self.n_failed + self.n_empty

    def summary(self) -> str:
        text = (
            f"sft rule refine: {self.n_selected} selected, {self.n_existing} stored, "
            f"{self.n_refined} refined now ({self.n_cached} from the call cache)"
        )
        if self.n_without_target:
            causes = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "-"
            text += (
                f", {self.n_without_target} without a target and not mined ({self.n_failed} "
                f"failed ({causes}), {self.n_empty} empty replies)"
            )
        return text


def refining_endpoint(config: Config, winner_model_id: str) -> EndpointConfig:
    """The reference that corrects a battle's champion answer: `refine_with`, else the winner."""
    refine_with = config.training.mining.refine_with
    for reference in config.references:
        if reference.name == refine_with or (
            refine_with is None and reference.model_id == winner_model_id
        ):
            return reference
    raise ValueError(
        f"the battle's winner {winner_model_id} is no configured reference, so it cannot "
        "correct the champion's answer. Fix: set training.mining.refine_with to a reference's "
        "name, or restore that reference in `references`."
    )


def _pending_examples(config: Config, round_id: int, selected: pd.DataFrame) -> list[dict]:
    """The selected examples not stored yet, each with its conversation and champion answer."""
    battle_ids = selected["battle_id"].tolist()
    with connect_warehouse(config.warehouse) as con:
        stored = {
            e
            for (e,) in con.execute(
                read_query("sft_examples_stored"), {"round_id": round_id}
            ).fetchall()
        }
        params = {"round_id": round_id, "battle_ids": battle_ids}
        inputs = con.execute(read_query("refine_inputs"), params).fetchall()
    by_battle = {b: (json.loads(messages), answer) for b, messages, answer in inputs}
    pending = []
    for row in selected.astype(object).where(selected.notna(), None).to_dict("records"):
        if row["example_id"] not in stored:
            conversation, answer = by_battle[row["battle_id"]]
            pending.append(row | {"conversation": conversation, "champion_answer": answer})
    return pending


async def _refine_with_endpoint(
    config: Config,
    round_id: int,
    endpoint: EndpointConfig,
    examples: Sequence[dict[str, Any]],
    writer: RowWriter,
    report: RefineReport,
) -> None:
    """One reference corrects its examples; each refined example joins its call's rows."""
    version = config.training.mining.refine_prompt_version
    requests = [
        ChatRequest.for_endpoint(
            endpoint,
            fit_refine_messages(
                e["conversation"], e["champion_answer"], version, endpoint.max_context_chars
            )[0],
        )
        for e in examples
    ]
    columns = ("conversation", "champion_answer")

    def store(i: int, result: CallResult) -> None:
        if not result.ok:
            return  # counted by the batch's stats
        if not (result.text or "").strip():
            report.n_empty += 1
            return
        example = {k: v for k, v in examples[i].items() if k not in columns}
        writer.add(
            "sft_examples",
            example
            | {
                "source_model": endpoint.model_id,
                "target_source": "refine",
                "target_call_id": result.call_id,
            },
        )
        report.n_refined += 1
        report.n_cached += int(result.cached)

    stats = CallBatchStats()
    await run_calls(
        endpoint,
        requests,
        warehouse=config.warehouse,
        writer=writer,
        round_id=round_id,
        on_result=store,
        stats=stats,
    )
    report.n_failed += stats.n_failed
    for cause, n in stats.errors.items():
        report.errors[cause] = report.errors.get(cause, 0) + n


def refine_sft_targets(config: Config, round_id: int, selected: pd.DataFrame) -> RefineReport:
    """Ask a reference to correct the champion's answer of every selected SFT battle not
    stored yet, and store each non-empty correction as the battle's SFT example."""
    report = RefineReport(n_selected=len(selected))
    pending = _pending_examples(config, round_id, selected) if len(selected) else []
    report.n_existing = report.n_selected - len(pending)
    by_endpoint: dict[str, tuple[EndpointConfig, list[dict]]] = {}
    for example in pending:
        endpoint = refining_endpoint(config, example["source_model"])
        by_endpoint.setdefault(endpoint.name, (endpoint, []))[1].append(example)

    async def main() -> None:
        async with RowWriter(config.warehouse) as writer, asyncio.TaskGroup() as group:
            for endpoint, examples in by_endpoint.values():
                group.create_task(
                    _refine_with_endpoint(config, round_id, endpoint, examples, writer, report)
                )

    if by_endpoint:
        run_sync(main())
    return report
