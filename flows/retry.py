"""`flywheel run --retry-failed`: a finished round's failed calls are made again.

Calls that failed after their retries (a dead reference, a rate limit that outlasted the
backoff) leave a finished round with unanswered prompts and battles in error. Retrying runs
the round's answer and judge steps again, which send only what is missing or in error, then
mines the round again, which adds only what the new battles unblock (and, with the refine SFT
rule, asks the failed corrections again). The round's training and
evaluation are not redone: later rounds train on the new rows (`training.mining.accumulate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow

from flywheel.config import Config
from flywheel.flows.round import answer, draw_prompts, judge, mine, select
from flywheel.warehouse.lifecycle import recorded_champion, round_stage
from flywheel.warehouse.store import connect_warehouse, read_query


@dataclass(frozen=True)
class FailedCalls:
    n_unanswered: int  # slice prompts some model has no answer to
    n_error_battles: int  # train battles whose judging ended in an error
    n_sft_without_target: int = 0  # SFT battles whose refine call failed (sft_rule refine)


def rounds_with_failed_calls(config: Config) -> dict[int, FailedCalls]:
    """Finished rounds with failed train calls, by round id."""
    n_models = 1 + len(config.references)
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(read_query("round_failed_calls"), {"n_models": n_models}).fetchall()
    return {round_id: FailedCalls(*counts) for round_id, *counts in rows if any(counts)}


def failed_calls_of_round(config: Config, round_id: int) -> FailedCalls:
    return rounds_with_failed_calls(config).get(round_id, FailedCalls(0, 0))


@flow(name="retry-round", flow_run_name="retry-round-{round_id}", log_prints=False)
def retry_round_calls(config: Config, round_id: int) -> None:
    """Answer, judge and mine a finished round again, with the champion it battled."""
    champion = recorded_champion(config.warehouse, round_id)
    stage = round_stage(config.warehouse, round_id)
    prompt_ids = draw_prompts(config, round_id)
    answer(config, round_id, prompt_ids, champion)
    pairs = select(config, round_id, prompt_ids, champion)  # under a budget: the stored choice
    judge(config, round_id, pairs)
    mine(config, round_id, stage)
