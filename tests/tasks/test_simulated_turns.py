"""tasks/simulate.py on the sandbox: a simulator reply without a marker ends its conversation as
unparsed (its raw text kept, never read as a move), and champion and candidate get the same
persona seed in every simulator request."""

from __future__ import annotations

import json
from collections import Counter

from flywheel.config import resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.answer import answer_as_student
from flywheel.tasks.simulate import round_personas, simulate_conversations
from flywheel.warehouse.store import connect
from tests.tasks.conversation_fixtures import (
    CANDIDATE,
    CHAMPION,
    insert_eval_prompts,
    planted_config,
)

VERSIONS = ((CANDIDATE, None), (CHAMPION, None))


def test_a_reply_without_a_marker_ends_the_conversation_unparsed(tmp_path) -> None:
    # the "simulator" is a sandbox reference: polite generic replies, no marker on the last line
    mute = {"name": "sim-user", "base_url": "sandbox", "model": "sandbox-strong"}
    config = planted_config(tmp_path, "conversations", simulator=mute, n_conversations=4)
    prompt_ids = insert_eval_prompts(config, 4)
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        for version, _ in VERSIONS:
            answer_as_student(live, 1, prompt_ids, version, None)
        report = simulate_conversations(live, 1, round_personas(live), VERSIONS)
    assert report.n_simulated == 8 and report.ended_by == {"unparsed": 8}
    with connect(config.warehouse.path, read_only=True) as con:
        rows = con.execute(
            "select role, move, parse_error, text from sim_turns where turn_index = 2"
        ).fetchall()
    assert len(rows) == 8
    assert all(r[0] == "user" and r[1] is None and "no marker" in r[2] and r[3] for r in rows)


def test_both_models_meet_the_same_persona_seed(tmp_path) -> None:
    config = planted_config(tmp_path, "conversations", n_conversations=4)
    prompt_ids = insert_eval_prompts(config, 4)
    with start_sandbox(config.sandbox) as server:
        live = resolve_sandbox_endpoints(config, server.base_url)
        for version, _ in VERSIONS:
            answer_as_student(live, 1, prompt_ids, version, None)
        personas = round_personas(live)
        simulate_conversations(live, 1, personas, VERSIONS)
    with connect(config.warehouse.path, read_only=True) as con:
        bodies = con.execute(
            "select request_json from llm_calls where endpoint = 'sim-user'"
        ).fetchall()
    by_seed: dict[int, set[str]] = {}
    n_requests: Counter[int] = Counter()
    for (body,) in bodies:
        request = json.loads(body)
        opening = request["messages"][1]["content"].split("[User turn ")[1].split("\n", 2)[1]
        by_seed.setdefault(request["seed"], set()).add(opening)
        n_requests[request["seed"]] += 1
    # every persona's seed, each with its own opening, in the requests of both models' talks
    assert len(bodies) >= 2 * len(personas)
    assert sorted(by_seed) == sorted(p.seed for p in personas)
    assert all(len(openings) == 1 for openings in by_seed.values())
    assert all(n >= 2 for n in n_requests.values())  # asked at least once in each model's talk
