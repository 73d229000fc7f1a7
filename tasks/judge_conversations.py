"""The conversation A/B's judge: for each persona, the candidate's and the champion's whole
conversations compared in both orders by the judge (and its panel) in the conversation
protocol `evaluation.conversations.judge_prompt_version`.

The judge machinery is the judge step's: games through the call cache (`judge_by_member`), each
verdict a `judgments` row, each battle a `battles` row of purpose `eval_conversation` once its
games are in (`BattleCloser`; prompt_id is the opening prompt, response ids the first
answers). Decided battles are never judged again; stored games are reused. The skill-checker
verifier is not run on conversations (their ground truth is `sim_conversations.handled_right`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from flywheel.config import Config
from flywheel.evaluators.judge_requests import build_conversation_judge_messages
from flywheel.evaluators.personas import GOALS
from flywheel.evaluators.protocols import parse_reply
from flywheel.evaluators.protocols.verdict import Verdict
from flywheel.llm.calls import CallBatchStats, ProgressFn, load_cached_calls, run_sync
from flywheel.llm.client import CallResult, ChatRequest, call_id_for, estimate_cost_usd
from flywheel.logs import step_logger
from flywheel.tasks.battle_plan import BattlePlan, battle_id_for, judgment_id_for
from flywheel.tasks.judge_calls import GAME_ORDERS, Game, judge_by_member
from flywheel.tasks.judge_report import JudgeReport
from flywheel.tasks.verdict_rows import BattleCloser, judgment_row
from flywheel.warehouse.store import connect_warehouse, read_query
from flywheel.warehouse.writer import RowWriter

PURPOSE = "eval_conversation"


@dataclass
class Transcript:
    """One stored conversation as the judge sees it."""

    kind: str
    prompt_id: str
    first_response_id: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)


def conversation_judge_config(config: Config) -> Config:
    """`config` with the judge (and its panel) speaking the conversation protocol, no verifier."""
    version = config.evaluation.conversations.judge_prompt_version
    judge = config.judge.model_copy(update={"prompt_version": version, "use_verifier": False})
    return config.model_copy(update={"judge": judge})


def load_transcripts(
    config: Config, round_id: int, models: Sequence[str]
) -> dict[tuple[str, str], Transcript]:
    """(persona_id, model_id) -> the stored conversation of that persona with that model."""
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            read_query("sim_transcripts"), {"round_id": round_id, "models": list(models)}
        ).fetchall()
    transcripts: dict[tuple[str, str], Transcript] = {}
    for persona_id, kind, prompt_id, model_id, _, role, text, response_id in rows:
        transcript = transcripts.setdefault((persona_id, model_id), Transcript(kind, prompt_id))
        transcript.turns.append({"role": role, "content": text})
        if response_id is not None:
            transcript.first_response_id = response_id
    return transcripts


def judge_conversations(
    config: Config,
    round_id: int,
    candidate: str,
    champion: str,
    *,
    on_progress: ProgressFn | None = None,
) -> JudgeReport:
    """Decide every (persona, candidate, champion) conversation battle not decided yet."""
    conv_config = conversation_judge_config(config)
    report = JudgeReport(round_id, PURPOSE)
    transcripts = load_transcripts(config, round_id, [candidate, champion])
    battles, games = plan_conversation_battles(
        conv_config, round_id, transcripts, candidate, champion, report
    )
    if battles:
        run_sync(judge_conversation_games(conv_config, report, battles, games, on_progress))
    log = step_logger(__name__)
    log.info(report.summary())
    if report.n_unparsed or report.n_errors:
        log.warning(
            "round %d: %d conversation games unparsed, %d failed (%s)",
            round_id,
            report.n_unparsed,
            report.n_errors,
            ", ".join(f"{k}: {v}" for k, v in report.errors.items()) or "no call errors",
        )
    return report


def plan_conversation_battles(
    config: Config,
    round_id: int,
    transcripts: dict[tuple[str, str], Transcript],
    candidate: str,
    champion: str,
    report: JudgeReport,
) -> tuple[list[BattlePlan], list[Game]]:
    """The battles still to decide (both conversations stored) and their games to judge."""
    personas = sorted({persona_id for persona_id, _ in transcripts})
    report.n_pairs = len(personas)
    stored_battles, stored_games = _stored(config, round_id, transcripts, candidate, champion)
    outcomes: Counter[str] = Counter()
    battles, games = [], []
    for persona_id in personas:
        a, b = transcripts.get((persona_id, candidate)), transcripts.get((persona_id, champion))
        if a is None or b is None or a.first_response_id is None or b.first_response_id is None:
            report.n_missing_answers += 1
            continue
        battle_id = battle_id_for(round_id, a.prompt_id, candidate, champion, PURPOSE)
        if stored_battles.get(battle_id, "error") != "error":
            outcomes[stored_battles[battle_id]] += 1
            continue
        plan = BattlePlan(
            battle_id, a.prompt_id, candidate, champion, a.first_response_id,
            b.first_response_id, a.turns[:1], a.turns[-1]["content"], b.turns[-1]["content"],
        )  # fmt: skip
        battles.append(plan)
        games.extend(_games(config, plan, GOALS[a.kind], a.turns, b.turns, stored_games))
    report.n_battles_stored = sum(outcomes.values())
    report.outcomes = dict(outcomes)
    report.n_planned_games = len(games)
    return battles, games


def _stored(
    config: Config,
    round_id: int,
    transcripts: dict[tuple[str, str], Transcript],
    candidate: str,
    champion: str,
) -> tuple[dict[str, str], dict[tuple[str, str, str], Verdict | None]]:
    """Stored battle outcomes by id, and stored usable verdicts by (battle, order, judge)."""
    prompt_ids = {t.prompt_id for t in transcripts.values()}
    ids = [battle_id_for(round_id, p, candidate, champion, PURPOSE) for p in sorted(prompt_ids)]
    with connect_warehouse(config.warehouse) as con:
        battles = dict(con.execute(read_query("battles_stored"), [ids]).fetchall())
        rows = con.execute(read_query("battles_judgments"), [ids]).fetchall()
    version = config.judge.prompt_version
    games = {
        (battle_id, order, judge): Verdict(bool(ok), verdict, first, second, error, strength)
        for _, battle_id, order, judge, v, raw, first, second, verdict, ok, _, error, strength
        in rows
        if v == version and not (raw is None and error is not None)
    }  # fmt: skip
    return battles, games


def _games(
    config: Config,
    plan: BattlePlan,
    goal: str,
    turns_a: list[dict[str, str]],
    turns_b: list[dict[str, str]],
    stored: dict[tuple[str, str, str], Verdict | None],
) -> list[Game]:
    """The battle's games without a stored verdict (those with one go into `plan.games`)."""
    judge, version = config.judge, config.judge.prompt_version
    games = []
    for order, member in ((o, m) for o in GAME_ORDERS for m in judge.members):
        verdict = stored.get((plan.battle_id, order, member.name))
        if verdict is not None:
            plan.games[(order, member.name)] = verdict
            continue
        first, second = (turns_a, turns_b) if order == "AB" else (turns_b, turns_a)
        messages = build_conversation_judge_messages(goal, first, second, version)
        request = ChatRequest.for_endpoint(member, messages)
        judgment_id = judgment_id_for(plan.battle_id, order, member.name, version)
        games.append(Game(plan.battle_id, order, judgment_id, request, 0, member))
    return games


async def judge_conversation_games(
    config: Config,
    report: JudgeReport,
    battles: list[BattlePlan],
    games: list[Game],
    on_progress: ProgressFn | None,
) -> None:
    """Every judge's games at once; each verdict stored, each battle once its games are in."""
    by_id = {b.battle_id: b for b in battles}
    async with RowWriter(config.warehouse) as writer:
        closer = BattleCloser(config, report.round_id, PURPOSE, writer, report)
        for plan in battles:
            if len(plan.games) == 2 * len(config.judge.members):
                closer.close(plan)

        def store(game: Game, result: CallResult) -> None:
            version = config.judge.prompt_version
            verdict = parse_reply(result.text or "", version) if result.ok else None
            writer.add("judgments", judgment_row(config, report.round_id, game, result, verdict))
            report.n_judged += int(verdict is not None)
            report.n_errors += int(verdict is None)
            report.n_unparsed += int(verdict is not None and not verdict.parse_ok)
            key = (game.order, (game.judge or config.judge).name)
            closer.game_done(by_id[game.battle_id], key, verdict, result.error)

        call_ids = sorted({call_id_for(g.judge or config.judge, g.request) for g in games})
        cached = await asyncio.to_thread(load_cached_calls, config.warehouse, call_ids)
        count_to_send(config, games, cached, report)
        results = await judge_by_member(
            config.judge,
            games,
            store,
            warehouse=config.warehouse,
            writer=writer,
            round_id=report.round_id,
            cached=cached,
            on_progress=on_progress,
        )
    add_member_counts(report, results)
    report.outcomes = dict(closer.outcomes)


def count_to_send(
    config: Config, games: list[Game], cached: dict[str, CallResult], report: JudgeReport
) -> None:
    """The games the call cache answers, those to send and their estimated cost (at most)."""
    to_send = [g for g in games if call_id_for(g.judge or config.judge, g.request) not in cached]
    report.n_cached = len(games) - len(to_send)
    report.n_to_send = len(to_send)
    report.estimated_cost_usd = sum(
        estimate_cost_usd(
            member, [g.request for g in to_send if (g.judge or config.judge).name == member.name]
        )
        for member in config.judge.members
    )


def add_member_counts(report: JudgeReport, results: list[tuple[CallBatchStats, int]]) -> None:
    """Each panel member's batch counts into the report: cost, calls sent, games asked again
    as text, call errors by cause (what the single-turn judge step reports)."""
    report.cost_usd += sum(stats.cost_usd for stats, _ in results)
    report.n_calls_sent = (report.n_calls_sent or 0) + sum(stats.n_sent for stats, _ in results)
    report.n_format_refused += sum(n_refused for _, n_refused in results)
    for stats, _ in results:
        for cause, n in stats.errors.items():
            report.errors[cause] = report.errors.get(cause, 0) + n
