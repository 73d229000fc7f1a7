"""The judge of RL's win-rate stop: the policy's answers against the champion's, both orders.

`judge_winrate` is the `WinRateJudge` (llm/winrate_stop.py) that tasks/train.py gives the
rm+rl stage: for each held-out prompt a battle of the policy (model A) against the champion
(model B), judged by the configured judge (and panel) in both orders with the round's judge
protocol: the requests are built by the judge step's own builders (`fit_judge_messages`,
`ChatRequest.for_endpoint`), sent through `judge_with` of tasks/judge.py (the call cache,
the format-refusal retry), parsed by `parse_reply`, aggregated over a panel and combined by
`combine_games`. Every call is stored in `llm_calls` with the round id, so a rerun that
generates the same answers sends nothing. The battles are not stored in `battles` or
`judgments` (they are not the round's train or eval battles, and must not reach mining or
ratings); the check's counts go to the training run's metrics.

A prompt where the policy answers exactly as the champion is a tie without a judge call.
The win rate scores a win 1, a tie or an inconsistent pair 0.5, a loss 0 (as the A/B test
does, evaluators/abtest.py); unparsed or failed battles are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.config import Config
from flywheel.evaluators.abtest import SCORE_BY_OUTCOME
from flywheel.evaluators.games import aggregate_verdicts, combine_games
from flywheel.evaluators.protocols import parse_reply
from flywheel.evaluators.protocols.verdict import Verdict
from flywheel.figures import count, share
from flywheel.llm.calls import load_cached_calls, run_sync
from flywheel.llm.client import CallResult, call_id_for
from flywheel.llm.winrate_stop import Conversation, WinRateCheck, WinRateJudge
from flywheel.logs import step_logger
from flywheel.tasks.judge_calls import GAME_ORDERS, Game, judge_request, judge_with
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.writer import RowWriter

POLICY, CHAMPION = "rl-policy", "champion"
VerdictKey = tuple[str, str, str]  # (battle id, order, judge name)


@dataclass(frozen=True)
class _Battle:
    battle_id: str
    conversation: Conversation
    policy_answer: str
    champion_answer: str


def _battles(
    round_id: int, prompts: list[Conversation], champion: list[str], policy: list[str]
) -> list[_Battle]:
    return [
        _Battle(content_id(["rl-winrate", round_id, c, p_answer, c_answer]), c, p_answer, c_answer)
        for c, c_answer, p_answer in zip(prompts, champion, policy, strict=True)
    ]


def _games(config: Config, battles: list[_Battle]) -> list[Game]:
    """Both orders of each battle whose answers differ, for every judge of the panel; order
    AB shows the policy's answer first."""
    judge = config.judge
    games = []
    for battle in battles:
        if battle.policy_answer == battle.champion_answer:
            continue
        for order in GAME_ORDERS:
            first, second = (
                (battle.policy_answer, battle.champion_answer)
                if order == "AB"
                else (battle.champion_answer, battle.policy_answer)
            )
            for member in judge.members:
                request, n_cut = judge_request(judge, member, battle.conversation, first, second)
                judgment_id = content_id([battle.battle_id, order, member.name])
                games.append(Game(battle.battle_id, order, judgment_id, request, n_cut, member))
    return games


async def _send(
    config: Config, round_id: int, games: list[Game]
) -> tuple[dict[VerdictKey, Verdict | None], int]:
    """Each game's verdict (None: its call failed) and the number of calls sent."""
    verdicts: dict[VerdictKey, Verdict | None] = {}
    call_ids = sorted({call_id_for(g.judge or config.judge, g.request) for g in games})
    cached = load_cached_calls(config.warehouse, call_ids)

    def store(game: Game, result: CallResult) -> None:
        version = config.judge.prompt_version
        verdict = parse_reply(result.text or "", version) if result.ok else None
        verdicts[(game.battle_id, game.order, (game.judge or config.judge).name)] = verdict

    n_sent = 0
    async with RowWriter(config.warehouse) as writer:
        for member in config.judge.members:
            member_games = [g for g in games if (g.judge or config.judge).name == member.name]
            if member_games:
                stats, _ = await judge_with(
                    member,
                    member_games,
                    store,
                    warehouse=config.warehouse,
                    writer=writer,
                    round_id=round_id,
                    cached=cached,
                )
                n_sent += stats.n_sent
    return verdicts, n_sent


def _outcome(
    config: Config, battle: _Battle, verdicts: dict[VerdictKey, Verdict | None]
) -> str | None:
    """The battle's outcome from the policy's side; None when a call failed."""
    if battle.policy_answer == battle.champion_answer:
        return "tie"
    games = []
    for order in GAME_ORDERS:
        members = [verdicts.get((battle.battle_id, order, m.name)) for m in config.judge.members]
        if any(v is None for v in members):
            return None
        games.append(aggregate_verdicts(members, config.judge.panel_aggregate))  # type: ignore[arg-type]
    return combine_games(games[0], games[1]).outcome


def judged_check(
    config: Config,
    round_id: int,
    prompts: list[Conversation],
    champion_answers: list[str],
    policy_answers: list[str],
    step: int,
) -> WinRateCheck:
    """One win-rate check after `step` RL steps (see the module doc)."""
    battles = _battles(round_id, prompts, champion_answers, policy_answers)
    games = _games(config, battles)
    verdicts, n_sent = run_sync(_send(config, round_id, games)) if games else ({}, 0)
    outcomes = [_outcome(config, b, verdicts) for b in battles]
    scored = [SCORE_BY_OUTCOME[o] for o in outcomes if o in SCORE_BY_OUTCOME]
    check = WinRateCheck(
        step=step,
        win_rate=sum(scored) / len(scored) if scored else None,
        n_battles=len(scored),
        n_wins=outcomes.count("win"),
        n_losses=outcomes.count("loss"),
        n_unjudged=len(outcomes) - len(scored),
        n_sent=n_sent,
    )
    step_logger(__name__).info(
        "round %d RL step %d: judged win rate of the policy over the champion %s on %s prompts "
        "held out of the round's slice (not the eval set): %s wins, %s losses, %s unjudged; "
        "%s games, %s judge calls sent (the rest answered from the call cache)",
        round_id,
        step,
        share(check.win_rate),
        count(len(battles)),
        count(check.n_wins),
        count(check.n_losses),
        count(check.n_unjudged),
        count(len(games)),
        count(n_sent),
    )
    if check.win_rate is None:
        step_logger(__name__).warning(
            "round %d RL step %d: no win-rate battle got a verdict (judge calls failed or "
            "unparsed; see llm_calls.error): this check cannot stop RL",
            round_id,
            step,
        )
    return check


def winrate_judge(config: Config, round_id: int) -> WinRateJudge:
    """`judged_check` bound to the round and its judge endpoints."""

    def judge(
        prompts: list[Conversation], champion: list[str], policy: list[str], step: int
    ) -> WinRateCheck:
        return judged_check(config, round_id, prompts, champion, policy, step)

    return judge
