"""Running judge calls: one game is one request to one judge; a judge's games go out as one
batch through the call cache of `llm/calls.py` (cached by call id, bounded concurrency,
retries), each result handed to the caller's `store` as it arrives.

A JSON-protocol game whose endpoint refuses `response_format` (HTTP 400) is asked again without
it and its text parsed; only the text call's result is stored. Used by the judge step
(tasks/judge.py) and by RL's win-rate check (tasks/rl_winrate.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from flywheel.config import EndpointConfig, JudgeConfig, WarehouseConfig
from flywheel.evaluators.judge_requests import Conversation, fit_judge_messages
from flywheel.evaluators.protocols import judge_prompt
from flywheel.llm.calls import CallBatchStats, ProgressFn, run_calls
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.logs import step_logger
from flywheel.tasks.progress_sum import ProgressSum
from flywheel.warehouse.writer import RowWriter

GameOrder = Literal["AB", "BA"]
GAME_ORDERS: tuple[GameOrder, GameOrder] = ("AB", "BA")
REFUSAL_CAUSE = "BadRequestError"  # CallBatchStats' cause of an HTTP 400
StoreGame = Callable[["Game", CallResult], None]


@dataclass
class Game:
    """One game to judge: a battle's answers shown in one order."""

    battle_id: str
    order: GameOrder
    judgment_id: str
    request: ChatRequest
    n_turns_cut: int = 0  # earlier conversation turns dropped to fit judge.max_context_chars
    judge: EndpointConfig | None = None  # the panel member judging it; None: config.judge


def judge_request(
    judge: JudgeConfig,
    member: EndpointConfig,
    conversation: Conversation,
    first: str,
    second: str,
) -> tuple[ChatRequest, int]:
    """The request asking `member` to judge `first` against `second` in the protocol of
    `judge.prompt_version`, and the conversation turns dropped to fit its context."""
    messages, n_cut = fit_judge_messages(
        conversation, first, second, judge.prompt_version, member.max_context_chars
    )
    response_format = judge_prompt(judge.prompt_version).response_format_json
    return ChatRequest.for_endpoint(member, messages, response_format=response_format), n_cut


def is_format_refusal(request: ChatRequest, result: CallResult) -> bool:
    """True when a request with `response_format` failed with HTTP 400 (the endpoint does not
    take structured output): it is asked again without it."""
    return (
        request.response_format is not None
        and not result.ok
        and "(HTTP 400)" in (result.error or "")
    )


async def judge_by_member(
    judge: JudgeConfig,
    games: list[Game],
    store: StoreGame,
    *,
    warehouse: WarehouseConfig,
    writer: RowWriter,
    round_id: int,
    cached: dict[str, CallResult],
    on_progress: ProgressFn | None = None,
) -> list[tuple[CallBatchStats, int]]:
    """Every panel member judges its own games, all at once (`judge_with` each), its progress
    one part of the step's; returns each member's counts."""
    by_judge = {
        m.name: [g for g in games if (g.judge or judge).name == m.name] for m in judge.members
    }
    progress = ProgressSum(on_progress, {name: len(g) for name, g in by_judge.items()})
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                judge_with(
                    member,
                    by_judge[member.name],
                    store,
                    warehouse=warehouse,
                    writer=writer,
                    round_id=round_id,
                    cached=cached,
                    on_progress=progress.part(member.name),
                )
            )
            for member in judge.members
            if by_judge[member.name]
        ]
    return [task.result() for task in tasks]


async def judge_with(
    judge: EndpointConfig,
    games: list[Game],
    store: StoreGame,
    *,
    warehouse: WarehouseConfig,
    writer: RowWriter,
    round_id: int,
    cached: dict[str, CallResult],
    on_progress: ProgressFn | None = None,
) -> tuple[CallBatchStats, int]:
    """One judge's games: sent (or cached), each result stored; JSON games its endpoint
    refused `response_format` for are asked again as text. Returns the batch's counts and
    the number of games asked again."""
    refused: list[Game] = []

    def on_result(i: int, result: CallResult) -> None:
        if is_format_refusal(games[i].request, result):
            refused.append(games[i])  # asked again below, as text; nothing stored for it
        else:
            store(games[i], result)

    stats = CallBatchStats()
    await run_calls(
        judge,
        [g.request for g in games],
        warehouse=warehouse,
        writer=writer,
        round_id=round_id,
        on_result=on_result,
        on_progress=on_progress,
        stats=stats,
        cached=cached,
    )
    if refused:
        n_refused_calls = len({g.request for g in refused})
        stats.errors[REFUSAL_CAUSE] = stats.errors.get(REFUSAL_CAUSE, 0) - n_refused_calls
        stats.errors = {k: v for k, v in stats.errors.items() if v > 0}
        text_stats = await _ask_as_text(judge, refused, store, warehouse, writer, round_id)
        stats.cost_usd += text_stats.cost_usd
        for cause, n in text_stats.errors.items():
            stats.errors[cause] = stats.errors.get(cause, 0) + n
    return stats, len(refused)


async def _ask_as_text(
    judge: EndpointConfig,
    refused: list[Game],
    store: StoreGame,
    warehouse: WarehouseConfig,
    writer: RowWriter,
    round_id: int,
) -> CallBatchStats:
    """The games whose `response_format` the judge refused, asked again without it."""
    step_logger(__name__).warning(
        "round %d: %s refused response_format (HTTP 400) for %d games; asking again without "
        "it and parsing the text",
        round_id,
        judge.name,
        len(refused),
    )
    as_text = [replace(g, request=g.request.without_response_format()) for g in refused]
    text_stats = CallBatchStats()
    await run_calls(
        judge,
        [g.request for g in as_text],
        warehouse=warehouse,
        writer=writer,
        round_id=round_id,
        on_result=lambda i, result: store(as_text[i], result),
        stats=text_stats,
    )
    return text_stats
