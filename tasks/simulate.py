"""Simulated conversations (evaluation.mode conversations or both): each persona talks with
each model (champion and candidate), turn by turn, through the call cache.

Plan before paying: conversations already stored for the round are reused whole. A new
conversation opens with the persona's opening prompt (held out: an eval prompt, or a logged
conversation's, tasks/conversation_goals.py) and the model's stored single-turn answer to it
(answered through `student.backend`, here when the eval step did not), then alternates: the
simulated user (`evaluation.conversations.simulator`, the persona's seed with every request,
the same for both models) writes the next user turn, the model answers it. Every request goes through the
content-addressed call cache (`llm/calls.py`), so a conversation cut short by a crash is
replayed from the cache on the next run and nothing is paid for twice. A conversation stops
after `max_turns` user turns, or when the user is done, gives up, or writes a reply that
`parse_user_turn` cannot read (ended_by `unparsed`). A conversation whose call failed after
its retries is not stored: the next run tries it again.

The model answers over HTTP: the fixed `student.endpoint` as the version (backend endpoint),
or the version's checkpoint served for the whole batch (backend server or vllm).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import Config, EndpointConfig
from flywheel.evaluators.personas import Persona, handled_right
from flywheel.evaluators.simulator_prompts import (
    ENDING_MOVES,
    build_sim_user_messages,
    parse_user_turn,
)
from flywheel.figures import count, usd
from flywheel.llm.calls import CallBatchStats, call_endpoint
from flywheel.llm.client import CallResult, ChatRequest
from flywheel.logs import step_logger
from flywheel.tasks.answer import answer_as_student
from flywheel.tasks.conversation_goals import round_personas as draw_round_personas
from flywheel.tasks.endpoint_answers import endpoint_cache_tag
from flywheel.tasks.responses import AnswerSource
from flywheel.tasks.student import fixed_endpoint_source
from flywheel.warehouse.ids import content_id
from flywheel.warehouse.reads import load_prompts, load_responses
from flywheel.warehouse.store import connect_warehouse, now_utc, read_query, transaction
from flywheel.warehouse.writes import insert_new

Version = tuple[str, str | None]  # (version_id, checkpoint path)


@dataclass
class Talk:
    """One conversation in progress: a persona with one model."""

    persona: Persona
    model_id: str
    conversation_id: str
    system: list[dict[str, str]]  # the prompt's system turns: sent to the model only
    turns: list[dict[str, str]]  # user and assistant turns, the opening first
    rows: list[dict[str, Any]]  # its sim_turns rows so far
    ended_by: str | None = None
    failed: bool = False
    served_model: str | None = None  # the name the version answered as (its endpoint's model)


@dataclass
class PartCounts:
    """The calls of one side of the conversations: the simulated user's or the model's."""

    n_requests: int = 0  # made, from the call cache or sent
    n_sent: int = 0
    n_failed: int = 0  # requests whose call failed after its retries
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)  # failed calls by cause

    def add(self, n_requests: int, stats: CallBatchStats) -> None:
        self.n_requests += n_requests
        self.n_sent += stats.n_sent
        self.n_failed += stats.n_failed
        self.cost_usd += stats.cost_usd
        self.errors.update(stats.errors)

    def summary(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
        return (
            f"{count(self.n_requests)} requests, {count(self.n_sent)} sent, "
            f"{count(self.n_failed)} failed{f' ({errors})' if errors else ''}, "
            f"spent {usd(self.cost_usd)}"
        )


@dataclass
class SimulationReport:
    round_id: int
    n_planned: int = 0
    n_stored_before: int = 0
    n_simulated: int = 0
    n_failed: int = 0
    simulator: PartCounts = field(default_factory=PartCounts)
    model: PartCounts = field(default_factory=PartCounts)
    ended_by: Counter[str] = field(default_factory=Counter)

    @property
    def n_requests(self) -> int:  # simulator and model requests made (from the cache or sent)
        return self.simulator.n_requests + self.model.n_requests

    @property
    def n_sent(self) -> int:
        return self.simulator.n_sent + self.model.n_sent

    @property
    def cost_usd(self) -> float:
        return self.simulator.cost_usd + self.model.cost_usd

    def summary(self) -> str:
        endings = ", ".join(f"{k}: {v}" for k, v in sorted(self.ended_by.items())) or "none"
        return (
            f"round {self.round_id} conversations: {self.n_planned} planned, "
            f"{self.n_stored_before} stored before, {self.n_simulated} simulated ({endings}), "
            f"{self.n_failed} failed (tried again next run); simulated user: "
            f"{self.simulator.summary()}; model: {self.model.summary()}"
        )


def conversation_id_for(round_id: int, persona_id: str, model_id: str) -> str:
    return content_id(["sim_conversation", round_id, persona_id, model_id])


def round_personas(config: Config) -> list[Persona]:
    """The personas of `evaluation.conversations`: over the held-out prompts, and over the
    logged conversations with `goals` logs or both (tasks/conversation_goals.py)."""
    return draw_round_personas(config)


def simulate_conversations(
    config: Config, round_id: int, personas: Sequence[Persona], versions: Sequence[Version]
) -> SimulationReport:
    """Every (persona, version) conversation not stored yet, simulated and stored."""
    report = SimulationReport(round_id, n_planned=len(personas) * len(versions))
    store_personas(config, personas)
    stored = stored_conversations(config, round_id)
    for version_id, checkpoint in versions:
        todo = [
            p
            for p in personas
            if conversation_id_for(round_id, p.persona_id, version_id) not in stored
        ]
        report.n_stored_before += len(personas) - len(todo)
        answer_openings(config, round_id, todo, version_id, checkpoint)
        talks = open_talks(config, round_id, todo, version_id)
        if talks:
            with answering_endpoint(config, version_id, checkpoint) as (endpoint, tag):
                for talk in talks:
                    talk.served_model = endpoint.model
                run_talks(config, round_id, talks, endpoint, tag, report)
        report.n_failed += sum(t.failed for t in talks) + len(todo) - len(talks)
        store_talks(config, round_id, [t for t in talks if not t.failed], report)
    step_logger(__name__).info(report.summary())
    return report


def answer_openings(
    config: Config,
    round_id: int,
    personas: Sequence[Persona],
    version_id: str,
    checkpoint: str | None,
) -> None:
    """The version's single-turn answer to each opening it has not answered yet (a logged
    opening is no eval prompt: the eval step did not answer it)."""
    prompt_ids = sorted({p.prompt_id for p in personas})
    answered = load_responses(config.warehouse, prompt_ids, [version_id]) if prompt_ids else {}
    missing = [pid for pid in prompt_ids if (pid, version_id) not in answered]
    if missing:
        answer_as_student(config, round_id, missing, version_id, checkpoint)


def open_talks(
    config: Config, round_id: int, personas: Sequence[Persona], version_id: str
) -> list[Talk]:
    """Each persona's conversation with the version, up to the version's stored first answer
    (a persona whose opening the version has not answered is left out)."""
    prompt_ids = [p.prompt_id for p in personas]
    prompts = load_prompts(config.warehouse, prompt_ids) if personas else {}
    answers = load_responses(config.warehouse, prompt_ids, [version_id]) if personas else {}
    talks = []
    for persona in personas:
        if (persona.prompt_id, version_id) not in answers:
            continue
        response_id, answer = answers[(persona.prompt_id, version_id)]
        messages = prompts[persona.prompt_id].messages
        system = [m for m in messages if m["role"] == "system"]
        turns = [m for m in messages if m["role"] != "system"]
        turns.append({"role": "assistant", "content": answer})
        conversation_id = conversation_id_for(round_id, persona.persona_id, version_id)
        rows = [turn_row(conversation_id, i, t["role"], t["content"]) for i, t in enumerate(turns)]
        rows[-1]["response_id"] = response_id
        talks.append(Talk(persona, version_id, conversation_id, system, turns, rows))
    return talks


def turn_row(
    conversation_id: str, index: int, role: str, text: str, **fields: Any
) -> dict[str, Any]:
    row = {
        "conversation_id": conversation_id,
        "turn_index": index,
        "role": role,
        "text": text,
        "move": None,
        "parse_error": None,
        "call_id": None,
        "response_id": None,
        "created_at": now_utc(),
    }
    return row | fields


def run_talks(
    config: Config,
    round_id: int,
    talks: list[Talk],
    endpoint: EndpointConfig,
    cache_tag: str | None,
    report: SimulationReport,
) -> None:
    """Alternate user and model turns over all talks at once until each has ended."""
    for _ in range(config.evaluation.conversations.max_turns - 1):
        ask_users(
            config, round_id, [t for t in talks if t.ended_by is None and not t.failed], report
        )
        active = [t for t in talks if t.ended_by is None and not t.failed]
        if not active:
            break
        answer_turns(config, round_id, active, endpoint, cache_tag, report)
    for talk in talks:
        if talk.ended_by is None and not talk.failed:
            talk.ended_by = "max_turns"


def _call(
    config: Config,
    round_id: int,
    endpoint: EndpointConfig,
    requests: list[ChatRequest],
    part: PartCounts,
) -> list[CallResult]:
    results, stats = call_endpoint(
        endpoint, requests, warehouse=config.warehouse, round_id=round_id
    )
    part.add(len(requests), stats)
    return results


def ask_users(config: Config, round_id: int, talks: list[Talk], report: SimulationReport) -> None:
    """The simulated user's next turn in each talk (its persona's seed with every request)."""
    if not talks:
        return
    settings = config.evaluation.conversations
    simulator = settings.simulator
    assert simulator is not None  # the config requires it outside single_turn
    requests = [
        dataclasses.replace(
            ChatRequest.for_endpoint(
                simulator,
                build_sim_user_messages(t.persona, t.turns, settings.simulator_prompt_version),
            ),
            seed=t.persona.seed,
        )
        for t in talks
    ]
    for talk, result in zip(
        talks, _call(config, round_id, simulator, requests, report.simulator), strict=True
    ):
        if not result.ok:
            talk.failed = True
            continue
        turn = parse_user_turn(result.text or "")
        index = len(talk.rows)
        text = turn.text if turn.parse_ok else (result.text or "")
        talk.rows.append(
            turn_row(
                talk.conversation_id,
                index,
                "user",
                text,
                move=turn.move,
                parse_error=turn.error,
                call_id=result.call_id,
            )
        )
        if turn.move is None:
            talk.ended_by = "unparsed"
        elif turn.move in ENDING_MOVES:
            talk.ended_by = turn.move
        else:
            talk.turns.append({"role": "user", "content": turn.text})


def answer_turns(
    config: Config,
    round_id: int,
    talks: list[Talk],
    endpoint: EndpointConfig,
    cache_tag: str | None,
    report: SimulationReport,
) -> None:
    """The model's answer to each talk's latest user turn."""
    requests = [ChatRequest.for_endpoint(endpoint, t.system + t.turns, cache_tag) for t in talks]
    for talk, result in zip(
        talks, _call(config, round_id, endpoint, requests, report.model), strict=True
    ):
        if not result.ok:
            talk.failed = True
            continue
        text = result.text or ""
        talk.rows.append(
            turn_row(
                talk.conversation_id, len(talk.rows), "assistant", text, call_id=result.call_id
            )
        )
        talk.turns.append({"role": "assistant", "content": text})


@contextmanager
def answering_endpoint(
    config: Config, version_id: str, checkpoint: str | None
) -> Iterator[tuple[EndpointConfig, str | None]]:
    """The endpoint answering as the version, and its cache tag (kept apart per version)."""
    from flywheel.llm.serving import fixed_endpoint

    student = config.student
    backend = student.answer_backend
    if backend == "endpoint":
        endpoint = fixed_endpoint(student, version_id, checkpoint)
        source = fixed_endpoint_source(endpoint, checkpoint)
        yield endpoint, endpoint_cache_tag(endpoint, version_id, 0, source)
        return
    with served_version(config, version_id, checkpoint) as (endpoint, source):
        yield endpoint, endpoint_cache_tag(endpoint, version_id, 0, source)


@contextmanager
def served_version(
    config: Config, version_id: str, checkpoint: str | None
) -> Iterator[tuple[EndpointConfig, AnswerSource]]:
    """The version's checkpoint served by `student.serve` (backend server or vllm)."""
    from flywheel.llm.checkpoints import checkpoint_stops, weights_sha256
    from flywheel.llm.serving import serve_checkpoint, served_endpoint

    student = config.student
    if checkpoint is None:
        raise ValueError(
            f"{version_id} holds conversations served from its checkpoint, but none was given"
        )
    stop_ids, stops = checkpoint_stops(checkpoint)
    log_dir = Path(config.training.output_dir) / "serve-logs"
    backend = student.answer_backend
    with serve_checkpoint(student.serve, backend, checkpoint, version_id, log_dir) as served:
        endpoint = served_endpoint(student, served, stop_ids, stops, 0)
        yield endpoint, AnswerSource(backend, served.model, weights_sha256(checkpoint))


def stored_conversations(config: Config, round_id: int) -> set[str]:
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            read_query("sim_conversations_stored"), {"round_id": round_id}
        ).fetchall()
    return {cid for (cid,) in rows}


def store_personas(config: Config, personas: Sequence[Persona]) -> None:
    rows = [
        {
            "persona_id": p.persona_id,
            "kind": p.kind,
            "prompt_id": p.prompt_id,
            "follow_up_prompt_id": p.follow_up_prompt_id,
            "seed": p.seed,
            "goal_source": p.goal_source,
            "log_conversation_id": p.log_conversation_id,
            "created_at": now_utc(),
        }
        for p in personas
    ]
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "sim_personas", rows, ["persona_id"])


def store_talks(config: Config, round_id: int, talks: list[Talk], report: SimulationReport) -> None:
    """Each finished talk's conversation row and its turns, in one transaction."""
    settings = config.evaluation.conversations
    simulator = settings.simulator
    conversations = [
        {
            "conversation_id": t.conversation_id,
            "round_id": round_id,
            "persona_id": t.persona.persona_id,
            "persona_kind": t.persona.kind,
            "prompt_id": t.persona.prompt_id,
            "model_id": t.model_id,
            "served_model": t.served_model,
            "n_user_turns": sum(1 for r in t.rows if r["role"] == "user"),
            "n_pushbacks": sum(1 for r in t.rows if r["move"] == "pushback"),
            "ended_by": t.ended_by,
            "simulator": simulator.name if simulator else "",
            "simulator_prompt_version": settings.simulator_prompt_version,
            "handled_right": handled_right(t.turns),
            "created_at": now_utc(),
        }
        for t in talks
    ]
    if not talks:
        return
    turns = [r for t in talks for r in t.rows]
    with connect_warehouse(config.warehouse) as con, transaction(con):
        insert_new(con, "sim_turns", turns, ["conversation_id", "turn_index"])
        insert_new(con, "sim_conversations", conversations, ["conversation_id"])
    report.n_simulated += len(talks)
    report.ended_by.update(t.ended_by or "" for t in talks)
