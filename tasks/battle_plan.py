"""Planning the judge step before paying: the battles still to decide and their games.

A battle is (round, prompt, model A, model B, purpose); its games are both answer orders (AB:
model A's answer shown first, BA: model B's first) judged by every judge of the panel. Battles
already decided are counted, not judged again; games already stored are reused; a stored game
whose call had failed is judged again. Nothing is sent here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flywheel.config import Config, JudgeConfig
from flywheel.evaluators.protocols.verdict import Verdict
from flywheel.logs import step_logger
from flywheel.tasks.judge_calls import GAME_ORDERS, Game, judge_request
from flywheel.tasks.judge_report import JudgeReport
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.reads import load_prompts, load_responses
from flywheel.warehouse.store import connect_warehouse, read_query

Purpose = Literal["train", "eval"]
Pair = tuple[str, str, str]  # (prompt_id, model_a, model_b)
JudgmentKey = tuple[str, str, str, str]  # (battle, order, judge, prompt version)


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
) -> tuple[dict[str, str], dict[JudgmentKey, tuple[Any, ...]]]:
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
    for pair in unique_pairs:
        prompt_id, model_a, model_b = pair
        battle_id = ids[pair]
        if stored_battles.get(battle_id, "error") != "error":
            outcomes[stored_battles[battle_id]] += 1
            continue
        if (prompt_id, model_a) not in answers or (prompt_id, model_b) not in answers:
            report.n_missing_answers += 1
            continue
        (response_a_id, answer_a), (response_b_id, answer_b) = (
            answers[(prompt_id, model_a)],
            answers[(prompt_id, model_b)],
        )
        plan = BattlePlan(
            battle_id,
            *pair,
            response_a_id,
            response_b_id,
            prompts[prompt_id].messages,
            answer_a,
            answer_b,
        )
        battles.append(plan)
        games.extend(_games_to_judge(config.judge, plan, stored_games))
    report.n_battles_stored = sum(outcomes.values())
    report.outcomes = dict(outcomes)
    report.n_planned_games = len(games)
    report.n_prompts_cut = len({g.battle_id for g in games if g.n_turns_cut})
    return battles, games


def _games_to_judge(
    judge: JudgeConfig, plan: BattlePlan, stored_games: dict[JudgmentKey, tuple[Any, ...]]
) -> list[Game]:
    """The battle's games without a usable stored judgment (those with one go into
    `plan.games`), in order AB then BA, each by every judge of the panel."""
    games = []
    for order, member in ((o, m) for o in GAME_ORDERS for m in judge.members):
        stored = stored_games.get((plan.battle_id, order, member.name, judge.prompt_version))
        verdict = _stored_verdict(stored) if stored is not None else None
        if verdict is not None:
            plan.games[(order, member.name)] = verdict
            continue
        first, second = (
            (plan.answer_a, plan.answer_b) if order == "AB" else (plan.answer_b, plan.answer_a)
        )
        request, n_cut = judge_request(judge, member, plan.conversation, first, second)
        judgment_id = judgment_id_for(plan.battle_id, order, member.name, judge.prompt_version)
        games.append(Game(plan.battle_id, order, judgment_id, request, n_cut, member))
    return games
