"""tasks/conversation_goals.py on a real warehouse: a logged opening in a training slice, or a
near-duplicate of a sliced prompt, is never a simulated user's goal; a drawn one leaves the
training pool with its unsliced near-duplicates; the draw repeats; both versions answer a
logged opening the eval step did not and talk it through, stored with its lineage."""

from __future__ import annotations

import json

from flywheel.config import resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.conversation_goals import round_personas
from flywheel.tasks.simulate import simulate_conversations
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.tasks.conversation_fixtures import (
    CANDIDATE,
    CHAMPION,
    insert_eval_prompts,
    planted_config,
)

LONG = (
    "Please write a short friendly note to my neighbour {who} asking whether they could water "
    "the tomato plants on the balcony while we are away for the long weekend in {where}"
)
POOL = {  # prompt_id -> (text, slice_id)
    "sliced-opening": ("What is 17 + 25? Reply with Answer: N.", 1),
    "sliced-twin": (LONG.format(who="Anna", where="the mountains"), 1),
    "near-sliced": (LONG.format(who="Anna", where="the mountains, thanks"), None),
    "clean": ("Spell the word banana backwards and give it as Answer: WORD please.", None),
    "clean-twin": ("Spell the word banana backwards and give it as Answer: WORD please!", None),
    "praised": ("How many letters r are in the word strawberry? Reply with Answer: N.", None),
}
LOGGED = {  # conversation_id -> (opening prompt_id, first answer's feedback: (source, label))
    "log-sliced": ("sliced-opening", []),
    "log-near": ("near-sliced", []),
    "log-clean": ("clean", [("explicit", "negative")]),
    # a thumb up and the classifier's complaint: the explicit thumb wins, so no correction
    "log-praised": ("praised", [("explicit", "positive"), ("implicit", "negative")]),
}


def insert_pool_and_logs(config) -> None:
    prompts = [
        {
            "prompt_id": pid,
            "messages": json.dumps([{"role": "user", "content": text}]),
            "prompt_text": text,
            "source": "logs",
            "split": "pool",
            "slice_id": slice_id,
            "status": "active",
            "n_chars": len(text),
            "added_at": now_utc(),
        }
        for pid, (text, slice_id) in POOL.items()
    ]
    conversations = [
        {
            "conversation_id": cid,
            "source": "test",
            "log_format": "messages",
            "n_turns": 2,
            "prompt_id": pid,
            "file_sha256": "f",
            "line_no": i,
            "added_at": now_utc(),
        }
        for i, (cid, (pid, _)) in enumerate(LOGGED.items())
    ]
    turns = [
        row
        for cid, (pid, _) in LOGGED.items()
        for row in (
            {"conversation_id": cid, "turn_index": 0, "role": "user", "content": POOL[pid][0]},
            {"conversation_id": cid, "turn_index": 1, "role": "assistant", "content": "Answer: x"},
        )
    ]
    feedback = [
        {
            "feedback_id": f"fb-{cid}-{source}",
            "conversation_id": cid,
            "turn_index": 1,
            "source": source,
            "kind": "thumb" if source == "explicit" else "classified",
            "label": label if source == "explicit" else None,
            "category": None if source == "explicit" else "complaint",
            "created_at": now_utc(),
        }
        for cid, (_, given) in LOGGED.items()
        for source, label in given
    ]
    with connect(config.warehouse.path) as con:
        insert_new(con, "prompts", prompts, ["prompt_id"])
        insert_new(con, "log_conversations", conversations, ["conversation_id"])
        insert_new(con, "log_turns", turns, ["conversation_id", "turn_index"])
        insert_new(con, "feedback", feedback, ["feedback_id"])


def statuses(config) -> dict[str, tuple[str, str | None]]:
    with connect(config.warehouse.path, read_only=True) as con:
        rows = con.execute(
            "select prompt_id, status, contaminated_by from prompts where split = 'pool'"
        ).fetchall()
    return {pid: (status, by) for pid, status, by in rows}


def test_a_logged_goal_is_decontaminated_against_the_training_slices(tmp_path) -> None:
    config = planted_config(tmp_path, "conversations", n_conversations=4)
    insert_eval_prompts(config, 6)
    insert_pool_and_logs(config)
    personas = round_personas(config, source="logs")
    logged = [p for p in personas if p.goal_source == "logs"]
    assert sorted((p.log_conversation_id, p.prompt_id, p.kind) for p in logged) == [
        ("log-clean", "clean", "correction"),  # negative feedback on its first answer
        ("log-praised", "praised", "plain"),
    ]
    assert [p.goal_source for p in personas].count("eval") == 2
    assert statuses(config) == {
        "sliced-opening": ("active", None),
        "sliced-twin": ("active", None),
        "near-sliced": ("active", None),  # left out, but not the draw's to hold out
        "clean": ("contaminated", "clean"),
        "clean-twin": ("contaminated", "clean"),
        "praised": ("contaminated", "praised"),
    }
    assert round_personas(config, source="logs") == personas  # held out, still drawn, same


def test_eval_goals_read_no_logs_and_hold_nothing_out(tmp_path) -> None:
    config = planted_config(tmp_path, "conversations", n_conversations=4)
    insert_eval_prompts(config, 6)
    insert_pool_and_logs(config)
    personas = round_personas(config, source="eval")
    assert {p.goal_source for p in personas} == {"eval"} and len(personas) == 4
    assert all(status == "active" for status, _ in statuses(config).values())


def test_a_logged_goal_is_answered_and_talked_through_by_both_versions(tmp_path) -> None:
    config = planted_config(tmp_path, "conversations", n_conversations=2)
    insert_eval_prompts(config, 6)
    insert_pool_and_logs(config)
    drawn = round_personas(config, source="logs")
    personas = [p for p in drawn if p.log_conversation_id == "log-clean"]
    with start_sandbox(config.sandbox) as server:  # no single-turn answer to "clean" exists
        live = resolve_sandbox_endpoints(config, server.base_url)
        report = simulate_conversations(live, 1, personas, ((CANDIDATE, None), (CHAMPION, None)))
    assert report.n_simulated == 2 and report.n_failed == 0
    with connect(config.warehouse.path, read_only=True) as con:
        stored = con.execute(
            "select c.model_id, c.served_model, c.prompt_id, p.goal_source, "
            "p.log_conversation_id, p.kind from sim_conversations as c "
            "join sim_personas as p using (persona_id) order by c.model_id"
        ).fetchall()
    assert stored == [
        (CHAMPION, f"student-{CHAMPION}", "clean", "logs", "log-clean", "correction"),
        (CANDIDATE, f"student-{CANDIDATE}", "clean", "logs", "log-clean", "correction"),
    ]
