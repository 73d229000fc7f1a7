"""Step 3 of the round: the judge decides every battle, in both answer orders.

Plan before paying (tasks/battle_plan.py): the battles of the given pairs that are not yet
decided are listed with their games (AB: model A's answer shown first, BA: model B's first);
games already stored are reused, games whose request is in the call cache cost nothing; the
rest are counted and their cost estimated and logged before a single request is sent. Then
each judge's games are sent with bounded concurrency (tasks/judge_calls.py), each reply parsed
by the protocol of `judge.prompt_version` (`evaluators/protocols/`) and stored in `judgments`
(raw text, scores, verdict, parse status), and as soon as all games of a battle are in, the
battle is combined and stored in `battles`, outcome from model A's side
(tasks/verdict_rows.py).

- Unparseable replies and failed calls are stored as such and counted; a failed game and its
  `error` battle are judged again on a later run, decided battles never.
- The judge sees the prompt's whole conversation (cut to `judge.max_context_chars` by the
  rule of `evaluators/context.py`, counted in `n_prompts_cut` and `judgments.context_turns_cut`). A
  JSON-protocol game whose endpoint refuses `response_format` (HTTP 400) is asked again
  without it and its text parsed (`n_format_refused`).
- After the step, the round's decisive battles with neither a score gap nor a label strength
  are counted (`n_decisive_without_gap`) and a warning logged above
  `judge.max_share_without_gap`.
- With `judge.use_verifier`, battles on checkable prompts also get a verifier judgment from
  the skill checker; the battle's outcome stays the model judge's, and agreement is counted.
"""

from __future__ import annotations

from collections.abc import Sequence

from flywheel.config import Config
from flywheel.evaluators.protocols import parse_reply
from flywheel.llm.calls import ProgressFn, load_cached_calls, run_sync
from flywheel.llm.client import CallResult, call_id_for, estimate_cost_usd
from flywheel.logs import step_logger
from flywheel.tasks.battle_plan import BattlePlan, Pair, Purpose, games_per_battle, plan_battles
from flywheel.tasks.judge_calls import Game, StoreGame, judge_by_member
from flywheel.tasks.judge_report import JudgeReport
from flywheel.tasks.verdict_rows import BattleCloser, judgment_row
from flywheel.warehouse.store import connect_warehouse, read_query
from flywheel.warehouse.writer import RowWriter


def judge_battles(
    config: Config,
    round_id: int,
    pairs: Sequence[Pair],
    purpose: Purpose,
    *,
    on_progress: ProgressFn | None = None,
) -> JudgeReport:
    """Decide every battle of `pairs` (prompt, model A, model B) not decided yet; see module doc."""
    logger = step_logger(__name__)
    report = JudgeReport(round_id, purpose)
    battles, games = plan_battles(config, round_id, pairs, purpose, report)
    cached = _cached_games(config, games, report)
    _log_plan(config, report, len(battles), len(games))
    if battles:
        run_sync(_judge_games(config, report, battles, games, cached, on_progress))
    report.n_decisive, report.n_decisive_without_gap = _score_gap_counts(config, round_id, purpose)
    logger.info(report.summary())
    _warn_missing_gaps(config, report)
    if report.n_unparsed or report.n_errors:
        logger.warning(
            "round %d: %d games unparsed (excluded from mining and ratings), %d games failed (%s)",
            round_id,
            report.n_unparsed,
            report.n_errors,
            ", ".join(f"{k}: {v}" for k, v in report.errors.items()) or "no call errors",
        )
    return report


def _cached_games(config: Config, games: list[Game], report: JudgeReport) -> dict[str, CallResult]:
    """The call cache's answers to the planned games; counts those to send and their cost."""
    call_ids = [call_id_for(g.judge or config.judge, g.request) for g in games]
    cached = load_cached_calls(config.warehouse, sorted(set(call_ids)))
    to_send = [g for g, c in zip(games, call_ids, strict=True) if c not in cached]
    report.n_cached = len(games) - len(to_send)
    report.n_to_send = len(to_send)
    report.estimated_cost_usd = sum(
        estimate_cost_usd(
            m, [g.request for g in to_send if (g.judge or config.judge).name == m.name]
        )
        for m in config.judge.members
    )
    return cached


def _log_plan(config: Config, report: JudgeReport, n_battles: int, n_games: int) -> None:
    step_logger(__name__).info(
        "judge plan, round %d (%s): %d pairs, %d decided before, %d without both answers; "
        "%d battles to decide: %d games to judge, %d from the call cache, %d to send to %s "
        "(estimated cost at most $%.4f)",
        report.round_id,
        report.purpose,
        report.n_pairs,
        report.n_battles_stored,
        report.n_missing_answers,
        n_battles,
        n_games,
        report.n_cached,
        report.n_to_send,
        ", ".join(m.name for m in config.judge.members),
        report.estimated_cost_usd,
    )


async def _judge_games(
    config: Config,
    report: JudgeReport,
    battles: list[BattlePlan],
    games: list[Game],
    cached: dict[str, CallResult],
    on_progress: ProgressFn | None,
) -> None:
    """Every judge's games at once; each verdict stored, each battle once its games are in."""
    async with RowWriter(config.warehouse) as writer:
        closer = BattleCloser(config, report.round_id, report.purpose, writer, report)
        for plan in battles:
            if len(plan.games) == games_per_battle(config):  # all stored, the battle row was not
                closer.close(plan)
        store = _verdict_storer(config, report, writer, closer, battles)
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
    report.cost_usd = sum(stats.cost_usd for stats, _ in results)
    report.n_calls_sent = sum(stats.n_sent for stats, _ in results)
    report.n_format_refused += sum(n_refused for _, n_refused in results)
    report.errors = {}
    for stats, _ in results:
        for cause, n in stats.errors.items():
            report.errors[cause] = report.errors.get(cause, 0) + n
    report.outcomes = dict(closer.outcomes)


def _verdict_storer(
    config: Config,
    report: JudgeReport,
    writer: RowWriter,
    closer: BattleCloser,
    battles: list[BattlePlan],
) -> StoreGame:
    """What happens to each judged game: parsed, its row written, counted, its battle told."""
    by_id = {b.battle_id: b for b in battles}

    def store(game: Game, result: CallResult) -> None:
        verdict = parse_reply(result.text or "", config.judge.prompt_version) if result.ok else None
        writer.add("judgments", judgment_row(config, report.round_id, game, result, verdict))
        if verdict is None:
            report.n_errors += 1
        else:
            report.n_judged += 1
            report.n_unparsed += int(not verdict.parse_ok)
        key = (game.order, (game.judge or config.judge).name)
        closer.game_done(by_id[game.battle_id], key, verdict, result.error)

    return store


def _score_gap_counts(config: Config, round_id: int, purpose: str) -> tuple[int, int]:
    """(decisive battles, of those without a score gap) stored for the round and purpose."""
    with connect_warehouse(config.warehouse) as con:
        params = {"round_id": round_id, "purpose": purpose}
        n_decisive, n_without = con.execute(read_query("judge_score_gaps"), params).fetchone()
    return int(n_decisive), int(n_without)


def _warn_missing_gaps(config: Config, report: JudgeReport) -> None:
    """A warning when more than `judge.max_share_without_gap` of decisive battles has no gap."""
    if not report.n_decisive:
        return
    share = report.n_decisive_without_gap / report.n_decisive
    if share > config.judge.max_share_without_gap:
        step_logger(__name__).warning(
            "round %d (%s): %d of %d decisive battles (%.0f%%) have no score gap: the judge's "
            "scores were missing or dropped (see judgments.error), so mining by score gap skips "
            "them. Fix: check the judge's replies against judge.prompt_version's format "
            "(over judge.max_share_without_gap = %.2f)",
            report.round_id,
            report.purpose,
            report.n_decisive_without_gap,
            report.n_decisive,
            100 * share,
            config.judge.max_share_without_gap,
        )
