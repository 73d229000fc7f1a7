"""Step 3 of the round: the judge decides every battle, in both answer orders.

Plan before paying: the battles of the given pairs that are not yet decided are listed with
their games (AB: model A's answer shown first, BA: model B's first); games already stored
are reused, games whose request is in the call cache cost nothing; the rest are counted and
their cost estimated and logged before a single request is sent. Then the games are judged
with bounded concurrency, each reply parsed by `evaluators/judges.py` and stored in
`judgments` (raw text, scores, verdict, parse status), and as soon as both games of a battle
are in, the battle is combined and stored in `battles`, outcome from model A's side.

- An unparseable reply is stored with its raw text (parse_ok false, the reason in `error`);
  its battle is `unparsed`, which mining and ratings exclude; both are counted.
- A game whose call failed after its retries is stored with raw_text null and the cause in
  `error`; its battle is `error`. On a later run such games and battles are judged again and
  their rows replaced; decided battles are never judged again.
- The judge sees the prompt's whole conversation (cut to `judge.max_context_chars` by the
  rule of `llm/context.py`, counted in `n_prompts_cut` and `judgments.context_turns_cut`),
  in the protocol of `judge.prompt_version` (`evaluators/judge_prompts.py`). A JSON-protocol
  game whose endpoint refuses `response_format` (HTTP 400) is asked again without it and
  its text parsed (`n_format_refused`); only the text call's judgment is stored.
- After the step, the round's decisive battles with neither a score gap nor a label strength
  are counted (`n_decisive_without_gap`) and a warning logged above
  `judge.max_share_without_gap`.
- With `judge.use_verifier`, battles on checkable prompts also get a verifier judgment
  (judge `verifier`, game AB) from the skill checker; the battle's outcome stays the model
  judge's, and agreement is counted.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from flywheel.config import Config, EndpointConfig
from flywheel.evaluators.games import BattleOutcome, aggregate_verdicts, combine_games, verify_pair
from flywheel.evaluators.judge_requests import fit_judge_messages
from flywheel.evaluators.protocols import judge_prompt, parse_reply
from flywheel.evaluators.protocols.verdict import Verdict
from flywheel.llm.calls import CallBatchStats, ProgressFn, load_cached_calls, run_calls, run_sync
from flywheel.llm.client import CallResult, ChatRequest, RetryPolicy, call_id_for, estimate_cost_usd
from flywheel.logs import step_logger
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.reads import load_prompts, load_responses
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query
from flywheel.warehouse.writer import RowWriter

Purpose = Literal["train", "eval"]
GameOrder = Literal["AB", "BA"]
GAME_ORDERS: tuple[GameOrder, GameOrder] = ("AB", "BA")
VERIFIER_JUDGE = "verifier"
REFUSAL_CAUSE = "BadRequestError"  # CallBatchStats' cause of an HTTP 400
Pair = tuple[str, str, str]  # (prompt_id, model_a, model_b)


@dataclass
class JudgeReport:
    """What one judge step did. Outcomes cover every battle of the pairs, stored before or now."""

    round_id: int
    purpose: str
    n_pairs: int = 0
    n_battles_stored: int = 0  # decided before this run, not judged again
    n_missing_answers: int = 0  # pairs skipped: one side has no answer
    n_planned_games: int = 0  # games without a stored judgment
    n_cached: int = 0  # of those, answered by the call cache
    n_to_send: int = 0
    estimated_cost_usd: float = 0.0  # upper bound for the games to send
    cost_usd: float = 0.0
    n_judged: int = 0  # games parsed this run (sent or cached)
    n_unparsed: int = 0  # of those, no usable verdict
    n_errors: int = 0  # games whose call failed after the retries
    n_battles_written: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    n_verified: int = 0
    n_verifier_agree: int = 0
    n_checker_decisive: int = 0  # verified battles where exactly one answer is right
    n_checker_agree: int = 0  # of those, the judge's outcome names the right one
    n_prompts_cut: int = 0  # battles sent this run whose conversation lost its oldest turns
    n_format_refused: int = 0  # JSON games asked again as text: the endpoint refused the format
    n_decisive: int = 0  # win or loss battles of the round and purpose, stored before or now
    n_decisive_without_gap: int = 0  # of those, no score gap (scores missing or dropped)
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"round {self.round_id} judge ({self.purpose}): {self.n_pairs} pairs, "
            f"{self.n_battles_stored} already decided, {self.n_planned_games} games planned "
            f"({self.n_cached} cached, {self.n_to_send} sent, est. ${self.estimated_cost_usd:.4f}, "
            f"spent ${self.cost_usd:.4f}); {self.n_judged} judged, {self.n_unparsed} unparsed, "
            f"{self.n_errors} errors; {self.n_prompts_cut} conversations cut to the judge's "
            f"context; battles: {outcomes or 'none'}; {self.n_decisive_without_gap} of "
            f"{self.n_decisive} decisive battles without a score gap; the judge agrees with "
            f"the checker on {self.n_checker_agree} of {self.n_checker_decisive} battles "
            "where exactly one answer is right"
        )


@dataclass
class Game:
    """One game to judge: a battle's answers shown in one order."""

    battle_id: str
    order: GameOrder
    judgment_id: str
    request: ChatRequest
    n_turns_cut: int = 0  # earlier conversation turns dropped to fit judge.max_context_chars
    judge: EndpointConfig | None = None  # the panel member judging it; None: config.judge


@dataclass
class BattlePlan:
    """A battle to decide now, with its stored or newly judged games."""

    battle_id: str
    prompt_id: str
    model_a: str
    model_b: str
    response_a_id: str
    response_b_id: str
    conversation: list[dict[str, str]]  # the prompt's turns: system prompt, every turn
    answer_a: str
    answer_b: str
    # (order, judge name) -> verdict; None: the call failed
    games: dict[tuple[str, str], Verdict | None] = field(default_factory=dict)
    game_errors: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def question(self) -> str:
        """The last user turn (what the verifier checks)."""
        users = [m["content"] for m in self.conversation if m["role"] == "user"]
        return users[-1] if users else ""


def games_per_battle(config: Config) -> int:
    """Judged games one battle needs: both orders, by every judge of the panel."""
    return len(GAME_ORDERS) * len(config.judge.members)


def is_format_refusal(request: ChatRequest, result: CallResult) -> bool:
    """True when a request with `response_format` failed with HTTP 400 (the endpoint does not
    take structured output): it is asked again without it."""
    return (
        request.response_format is not None
        and not result.ok
        and "(HTTP 400)" in (result.error or "")
    )


def battle_id_for(round_id: int, prompt_id: str, model_a: str, model_b: str, purpose: str) -> str:
    """The natural key of a battle: hash of (round, prompt, model A, model B, purpose)."""
    return content_id(["battle", round_id, prompt_id, model_a, model_b, purpose])


def judgment_id_for(battle_id: str, game_order: str, judge: str, prompt_version: str) -> str:
    """The natural key of a judged game: hash of (battle, order, judge, prompt version)."""
    return content_id(["judgment", battle_id, game_order, judge, prompt_version])


def train_battle_pairs(
    config: Config, round_id: int, prompt_ids: Sequence[str], champion_id: str
) -> list[Pair]:
    """(prompt, champion, reference) for every prompt where both sides have an answer."""
    ref_ids = [ref.model_id for ref in config.references]
    stored = load_responses(config.warehouse, prompt_ids, [champion_id, *ref_ids])
    pairs = [
        (pid, champion_id, ref_id)
        for pid in dict.fromkeys(prompt_ids)
        if (pid, champion_id) in stored
        for ref_id in ref_ids
        if (pid, ref_id) in stored
    ]
    step_logger(__name__).info(
        "round %d: %d train battle pairs from %d prompts and %d references",
        round_id,
        len(pairs),
        len(set(prompt_ids)),
        len(ref_ids),
    )
    return pairs


def _load_state(
    config: Config, battle_ids: list[str]
) -> tuple[dict[str, str], dict[tuple[str, str, str, str], tuple[Any, ...]]]:
    """Stored battle outcomes by id, and stored judgments by (battle, order, judge, version)."""
    with connect_warehouse(config.warehouse) as con:
        battles = dict(con.execute(read_query("battles_stored"), [battle_ids]).fetchall())
        rows = con.execute(read_query("battles_judgments"), [battle_ids]).fetchall()
    judgments = {(r[1], r[2], r[3], r[4]): r for r in rows}
    return battles, judgments


def _stored_verdict(row: tuple[Any, ...]) -> Verdict | None:
    """The verdict of a stored judgment; None when its call had failed (to judge again)."""
    _, _, _, _, _, raw_text, score_first, score_second, verdict, parse_ok, _, error, strength = row
    if raw_text is None and error is not None:
        return None
    return Verdict(bool(parse_ok), verdict, score_first, score_second, error, strength)


def plan_battles(
    config: Config, round_id: int, pairs: Sequence[Pair], purpose: str, report: JudgeReport
) -> tuple[list[BattlePlan], list[Game]]:
    """The battles still to decide and the games still to judge (nothing is sent here)."""
    judge = config.judge
    unique_pairs = list(dict.fromkeys(pairs))
    report.n_pairs = len(unique_pairs)
    ids = {p: battle_id_for(round_id, *p, purpose) for p in unique_pairs}
    stored_battles, stored_games = _load_state(config, list(ids.values()))
    prompt_ids = [p[0] for p in unique_pairs]
    model_ids = sorted({m for p in unique_pairs for m in p[1:]})
    answers = load_responses(config.warehouse, prompt_ids, model_ids) if unique_pairs else {}
    prompts = load_prompts(config.warehouse, prompt_ids) if unique_pairs else {}
    outcomes: Counter[str] = Counter()
    battles: list[BattlePlan] = []
    games: list[Game] = []
    cut_battles: set[str] = set()
    for pair in unique_pairs:
        prompt_id, model_a, model_b = pair
        battle_id = ids[pair]
        if stored_battles.get(battle_id, "error") != "error":
            outcomes[stored_battles[battle_id]] += 1
            continue
        if (prompt_id, model_a) not in answers or (prompt_id, model_b) not in answers:
            report.n_missing_answers += 1
            continue
        plan = BattlePlan(
            battle_id,
            prompt_id,
            model_a,
            model_b,
            answers[(prompt_id, model_a)][0],
            answers[(prompt_id, model_b)][0],
            prompts[prompt_id].messages,
            answers[(prompt_id, model_a)][1],
            answers[(prompt_id, model_b)][1],
        )
        battles.append(plan)
        for order, member in ((o, m) for o in GAME_ORDERS for m in judge.members):
            stored = stored_games.get((battle_id, order, member.name, judge.prompt_version))
            verdict = _stored_verdict(stored) if stored is not None else None
            if verdict is not None:
                plan.games[(order, member.name)] = verdict
                continue
            first, second = (
                (plan.answer_a, plan.answer_b) if order == "AB" else (plan.answer_b, plan.answer_a)
            )
            messages, n_cut = fit_judge_messages(
                plan.conversation, first, second, judge.prompt_version, member.max_context_chars
            )
            judgment_id = judgment_id_for(battle_id, order, member.name, judge.prompt_version)
            request = ChatRequest.for_endpoint(
                member,
                messages,
                response_format=judge_prompt(judge.prompt_version).response_format_json,
            )
            games.append(Game(battle_id, order, judgment_id, request, n_cut, member))
            cut_battles.update([battle_id] if n_cut else [])
    report.n_battles_stored = sum(outcomes.values())
    report.outcomes = dict(outcomes)
    report.n_planned_games = len(games)
    report.n_prompts_cut = len(cut_battles)
    return battles, games


def judgment_row(
    config: Config,
    round_id: int,
    game: Game,
    result: CallResult,
    verdict: Verdict | None,
) -> dict[str, Any]:
    """The `judgments` row of one game: the raw reply and its parse, or the call's error."""
    return {
        "judgment_id": game.judgment_id,
        "battle_id": game.battle_id,
        "round_id": round_id,
        "game_order": game.order,
        "judge": (game.judge or config.judge).name,
        "prompt_version": config.judge.prompt_version,
        "raw_text": result.text if result.ok else None,
        "score_first": verdict.score_first if verdict else None,
        "score_second": verdict.score_second if verdict else None,
        "verdict": verdict.winner if verdict else None,
        "label_strength": verdict.strength if verdict else None,
        "parse_ok": bool(verdict and verdict.parse_ok),
        "call_id": result.call_id,
        "error": result.error if not result.ok else (verdict.error if verdict else None),
        "context_turns_cut": game.n_turns_cut,
        "created_at": now_utc(),
    }


def battle_row(
    config: Config, round_id: int, purpose: str, plan: BattlePlan, outcome: BattleOutcome | None
) -> dict[str, Any]:
    """The `battles` row; `outcome` None means a game's call failed (outcome `error`)."""
    return {
        "battle_id": plan.battle_id,
        "round_id": round_id,
        "prompt_id": plan.prompt_id,
        "purpose": purpose,
        "model_a": plan.model_a,
        "model_b": plan.model_b,
        "response_a_id": plan.response_a_id,
        "response_b_id": plan.response_b_id,
        "judge": config.judge.name,
        "score_a": outcome.score_a if outcome else None,
        "score_b": outcome.score_b if outcome else None,
        "score_gap": outcome.score_gap if outcome else None,
        "label_strength": outcome.label_strength if outcome else None,
        "outcome": outcome.outcome if outcome else "error",
        "created_at": now_utc(),
    }


def verifier_row(round_id: int, plan: BattlePlan, outcome: BattleOutcome) -> dict[str, Any]:
    """The verifier's judgment of a battle, stored as game AB of judge `verifier`."""
    winner = {"win": "first", "loss": "second"}.get(outcome.outcome, "tie")
    return {
        "judgment_id": judgment_id_for(plan.battle_id, "AB", VERIFIER_JUDGE, VERIFIER_JUDGE),
        "battle_id": plan.battle_id,
        "round_id": round_id,
        "game_order": "AB",
        "judge": VERIFIER_JUDGE,
        "prompt_version": VERIFIER_JUDGE,
        "raw_text": json.dumps({"outcome": outcome.outcome}),
        "score_first": outcome.score_a,
        "score_second": outcome.score_b,
        "verdict": winner,
        "parse_ok": True,
        "call_id": None,
        "error": None,
        "created_at": now_utc(),
    }


class _BattleCloser:
    """Writes a battle as soon as both of its games are in; counts what it saw."""

    def __init__(
        self, config: Config, round_id: int, purpose: str, writer: RowWriter, report: JudgeReport
    ) -> None:
        self.config, self.round_id, self.purpose = config, round_id, purpose
        self.writer, self.report = writer, report
        self.outcomes: Counter[str] = Counter(report.outcomes)

    def game_done(
        self, plan: BattlePlan, key: tuple[str, str], verdict: Verdict | None, error: str | None
    ) -> None:
        plan.games[key] = verdict
        if error is not None:
            plan.game_errors[key] = error
        if len(plan.games) == games_per_battle(self.config):
            self.close(plan)

    def close(self, plan: BattlePlan) -> None:
        ab, ba = (self.game_verdict(plan, order) for order in GAME_ORDERS)
        outcome = combine_games(ab, ba) if ab is not None and ba is not None else None
        self.writer.add(
            "battles", battle_row(self.config, self.round_id, self.purpose, plan, outcome)
        )
        self.report.n_battles_written += 1
        self.outcomes[outcome.outcome if outcome else "error"] += 1
        if outcome is None or not self.config.judge.use_verifier:
            return
        verified = verify_pair(plan.question, plan.answer_a, plan.answer_b)
        if verified is None:
            return
        self.writer.add("judgments", verifier_row(self.round_id, plan, verified))
        self.report.n_verified += 1
        self.report.n_verifier_agree += int(verified.outcome == outcome.outcome)
        if verified.outcome in ("win", "loss"):  # exactly one answer is right: calibration
            self.report.n_checker_decisive += 1
            self.report.n_checker_agree += int(verified.outcome == outcome.outcome)

    def game_verdict(self, plan: BattlePlan, order: str) -> Verdict | None:
        """The game's verdict: the judge's, or the panel's aggregate; None if a call failed."""
        judge = self.config.judge
        verdicts = [plan.games[(order, member.name)] for member in judge.members]
        if any(v is None for v in verdicts):
            return None
        return aggregate_verdicts(verdicts, judge.panel_aggregate)  # type: ignore[arg-type]


class _ProgressSum:
    """Adds the (done, total) of each judge's batch into one callback."""

    def __init__(self, on_progress: ProgressFn | None, totals: dict[str, int]) -> None:
        self.on_progress = on_progress
        self.done = dict.fromkeys(totals, 0)
        self.total = dict(totals)

    def for_judge(self, name: str) -> ProgressFn:
        def update(n_done: int, n_total: int) -> None:
            self.done[name], self.total[name] = n_done, n_total
            if self.on_progress is not None:
                self.on_progress(sum(self.done.values()), sum(self.total.values()))

        return update


async def _judge_async(
    config: Config,
    round_id: int,
    purpose: str,
    battles: list[BattlePlan],
    games: list[Game],
    cached: dict[str, CallResult],
    report: JudgeReport,
    sandbox_url: str | None,
    on_progress: ProgressFn | None,
    retry: RetryPolicy | None,
) -> None:
    async with RowWriter(config.warehouse) as writer:
        closer = _BattleCloser(config, round_id, purpose, writer, report)
        by_id = {b.battle_id: b for b in battles}
        for plan in battles:
            if len(plan.games) == games_per_battle(config):  # all stored, the battle row was not
                closer.close(plan)

        def store(game: Game, result: CallResult) -> None:
            verdict = (
                parse_reply(result.text or "", config.judge.prompt_version) if result.ok else None
            )
            writer.add("judgments", judgment_row(config, round_id, game, result, verdict))
            if verdict is None:
                report.n_errors += 1
            else:
                report.n_judged += 1
                report.n_unparsed += int(not verdict.parse_ok)
            key = (game.order, (game.judge or config.judge).name)
            closer.game_done(by_id[game.battle_id], key, verdict, result.error)

        members = config.judge.members
        by_judge = {
            m.name: [g for g in games if (g.judge or config.judge).name == m.name] for m in members
        }
        progress = _ProgressSum(on_progress, {name: len(g) for name, g in by_judge.items()})
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    judge_with(
                        config,
                        member,
                        by_judge[member.name],
                        cached,
                        writer,
                        store,
                        report,
                        sandbox_url,
                        progress.for_judge(member.name),
                        retry,
                        round_id,
                    )
                )
                for member in members
                if by_judge[member.name]
            ]
    stats = [task.result() for task in tasks]
    report.cost_usd = sum(s.cost_usd for s in stats)
    report.errors = {}
    for batch in stats:
        for cause, n in batch.errors.items():
            report.errors[cause] = report.errors.get(cause, 0) + n
    report.outcomes = dict(closer.outcomes)


async def judge_with(
    config: Config,
    judge: EndpointConfig,
    games: list[Game],
    cached: dict[str, CallResult],
    writer: RowWriter,
    store: Callable[[Game, CallResult], None],
    report: JudgeReport,
    sandbox_url: str | None,
    on_progress: ProgressFn,
    retry: RetryPolicy | None,
    round_id: int,
) -> CallBatchStats:
    """One judge's games: sent (or cached), each result stored; JSON games its endpoint
    refused `response_format` for are asked again as text. Returns the batch's counts."""
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
        warehouse=config.warehouse,
        writer=writer,
        sandbox_url=sandbox_url,
        round_id=round_id,
        on_result=on_result,
        on_progress=on_progress,
        retry=retry,
        stats=stats,
        cached=cached,
    )
    if not refused:
        return stats
    report.n_format_refused += len(refused)
    n_refused_calls = len({g.request for g in refused})
    stats.errors[REFUSAL_CAUSE] = stats.errors.get(REFUSAL_CAUSE, 0) - n_refused_calls
    stats.errors = {k: v for k, v in stats.errors.items() if v > 0}
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
        warehouse=config.warehouse,
        writer=writer,
        sandbox_url=sandbox_url,
        round_id=round_id,
        on_result=lambda i, result: store(as_text[i], result),
        retry=retry,
        stats=text_stats,
    )
    stats.cost_usd += text_stats.cost_usd
    for cause, n in text_stats.errors.items():
        stats.errors[cause] = stats.errors.get(cause, 0) + n
    return stats


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


def judge_battles(
    config: Config,
    round_id: int,
    pairs: Sequence[Pair],
    purpose: Purpose,
    sandbox_url: str | None,
    *,
    on_progress: ProgressFn | None = None,
    retry: RetryPolicy | None = None,
) -> JudgeReport:
    """Decide every battle of `pairs` (prompt, model A, model B) not decided yet; see module doc."""
    logger = step_logger(__name__)
    report = JudgeReport(round_id, purpose)
    battles, games = plan_battles(config, round_id, pairs, purpose, report)
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
    logger.info(
        "judge plan, round %d (%s): %d pairs, %d decided before, %d without both answers; "
        "%d battles to decide: %d games to judge, %d from the call cache, %d to send to %s "
        "(estimated cost at most $%.4f)",
        round_id,
        purpose,
        report.n_pairs,
        report.n_battles_stored,
        report.n_missing_answers,
        len(battles),
        len(games),
        report.n_cached,
        report.n_to_send,
        ", ".join(m.name for m in config.judge.members),
        report.estimated_cost_usd,
    )
    if battles:
        run_sync(
            _judge_async(
                config,
                round_id,
                purpose,
                battles,
                games,
                cached,
                report,
                sandbox_url,
                on_progress,
                retry,
            )
        )
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
