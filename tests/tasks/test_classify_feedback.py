"""The implicit-feedback classifier through a real sandbox server on 127.0.0.1: labels are
stored as implicit feedback rows with their call, once; a rerun sends nothing; failed calls
write nothing and are asked again; pairs read a batch at a time get their own turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flywheel.config import Config, parse_config, resolve_sandbox_endpoints
from flywheel.pool.logs_ingest import add_log_files
from flywheel.sandbox import classifier_replies
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks import classify_feedback
from flywheel.tasks.classify_feedback import (
    classify_logged_feedback,
    pairs_with_turns,
    pending_keys,
)
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.store import connect
from tests.conftest import REPO_ROOT, load_config_in

QUESTION = "What is 17 + 25? End your reply with a line of the form Answer: followed by the result."
NEXT = "Reverse the word 'silk'. Give the final result on the last line, after Answer:"


def conversation(conversation_id: str, *turns: str) -> dict:
    roles = ["user", "assistant"] * len(turns)
    return {
        "id": conversation_id,
        "messages": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)],
    }


LOG = [
    conversation("c-correct", QUESTION, "Answer: 43", "No, that's wrong. The answer is 42.", "42"),
    conversation("c-thanks", QUESTION, "Answer: 42", "Thanks, that's right!"),
    conversation("c-explain", QUESTION, "Answer: 43", "I don't follow. Could you explain?"),
    conversation("c-next", QUESTION, "Answer: 42", NEXT, "Answer: klis"),
    conversation("c-alone", QUESTION, "Answer: 42"),  # no next turn: nothing to read
]
EXPECTED = {
    ("c-correct", 1): "correction",
    ("c-thanks", 1): "positive",
    ("c-explain", 1): "clarification",
}


def rows(config: Config, query: str) -> list[tuple]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(query).fetchall()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    config = load_config_in(tmp_path)
    log = tmp_path / "day.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in LOG), encoding="utf-8")
    add_log_files(config, [log])
    return config


@pytest.fixture
def exact_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox classifier without its seeded errors: it says what the cues say."""
    for name in ("MISS_RATE", "STRAY_CUE_RATE", "DESCRIBED_QUOTE_RATE"):
        monkeypatch.setattr(classifier_replies, name, 0.0)
    monkeypatch.setattr(classifier_replies, "CONFUSIONS", {c: (c, 0.0) for c in EXPECTED.values()})


def test_labels_are_stored_once_with_their_call_and_a_rerun_sends_nothing(
    config: Config, exact_classifier: None
) -> None:
    with start_sandbox(config.sandbox) as server:
        resolved = resolve_sandbox_endpoints(config, server.base_url)
        first = classify_logged_feedback(resolved)
        n_calls = rows(config, "select count(*) from llm_calls")[0][0]
        second = classify_logged_feedback(resolved)

    assert (first.n_pairs, first.n_sent, first.n_cached) == (4, 4, 0)
    assert (first.n_labelled, first.n_no_feedback, first.n_unparsed) == (3, 1, 0)
    assert first.by_category == {"clarification": 1, "correction": 1, "positive": 1}
    stored = rows(
        config,
        """select f.conversation_id, f.turn_index, f.category, f.label, f.quote, f.kind,
                  f.source, f.classifier_version, c.call_id is not null, u.content
           from feedback as f
           left join llm_calls as c using (call_id)
           join log_conversations as lc using (conversation_id)
           join log_turns as u
             on u.conversation_id = f.conversation_id and u.turn_index = f.turn_index + 1
           order by all""",
    )
    conversation_of = dict(
        rows(config, "select conversation_id, external_id from log_conversations")
    )
    assert {(conversation_of[r[0]], r[1]): r[2] for r in stored} == EXPECTED
    for _, _, category, label, quote, kind, source, version, has_call, user_turn in stored:
        assert label == ("positive" if category == "positive" else "negative")
        assert (kind, source, version, has_call) == (
            "classified",
            "implicit",
            first.classifier_version,
            True,
        )
        assert quote.lower() in user_turn.lower()

    # the rerun plans nothing: the pair without feedback was recorded as read
    assert (second.n_pairs, second.n_sent, second.n_labelled) == (0, 0, 0)
    assert rows(config, "select count(*) from llm_calls")[0][0] == n_calls == 4
    assert rows(config, "select count(*) from feedback where source = 'implicit'") == [(3,)]
    assert rows(config, "select outcome, call_id is not null from feedback_reads") == [
        ("none", True)
    ]
    with connect(config.warehouse.path, read_only=True) as con:
        assert contract_violations(con) == []


def test_failed_calls_write_nothing_and_are_asked_again_when_the_endpoint_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"]["path"] = str(tmp_path / "flywheel.duckdb")
    data["sandbox"]["models"]["down-judge"] = {"role": "judge", "rate_500": 1.0}
    data["logs"] = {
        "classifier": {"name": "classifier", "model": "down-judge", "max_retries": 0},
    }
    down = parse_config(data, "smoke.yaml (test copy)")
    log = tmp_path / "day.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in LOG), encoding="utf-8")
    add_log_files(down, [log])
    with start_sandbox(down.sandbox) as server:
        failed = classify_logged_feedback(down, down.logs.classifier.at_sandbox(server.base_url))
    data["sandbox"]["models"]["down-judge"]["rate_500"] = 0.0  # the endpoint is back
    back = parse_config(data, "smoke.yaml (test copy)")
    with start_sandbox(back.sandbox) as server:
        retried = classify_logged_feedback(back, back.logs.classifier.at_sandbox(server.base_url))

    assert (failed.n_pairs, failed.n_failed, failed.n_labelled) == (4, 4, 0)
    assert "InternalServerError" in failed.errors
    assert (retried.n_pairs, retried.n_failed, retried.n_sent) == (4, 0, 4)
    n_rows = rows(down, "select count(*) from feedback where source = 'implicit'")[0][0]
    assert n_rows == retried.n_labelled > 0
    assert rows(back, "select count(*), count(error) from llm_calls") == [(4, 0)]  # replaced


def test_each_pair_gets_its_conversation_up_to_the_answer_and_the_next_user_turn(
    config: Config,
) -> None:
    keys = pending_keys(config, config.logs.classifier_prompt_version)
    pairs = {p.conversation_id: p for p in pairs_with_turns(config, keys)}
    conversation_of = dict(
        rows(config, "select conversation_id, external_id from log_conversations")
    )
    by_name = {conversation_of[c]: pair for c, pair in pairs.items()}

    assert sorted(by_name) == ["c-correct", "c-explain", "c-next", "c-thanks"]  # c-alone: none
    correct = by_name["c-correct"]  # its second answer has no next turn: not a pair
    assert correct.turn_index == 1
    assert correct.turns == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Answer: 43"},
    ]
    assert correct.user_turn == "No, that's wrong. The answer is 42."
    assert by_name["c-next"].user_turn == NEXT


def test_pairs_read_one_batch_at_a_time_get_the_labels_of_one_batch(
    config: Config, exact_classifier: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(classify_feedback, "PAIRS_PER_BATCH", 1)
    progress: list[tuple[int, int]] = []
    with start_sandbox(config.sandbox) as server:
        resolved = resolve_sandbox_endpoints(config, server.base_url)
        report = classify_logged_feedback(
            resolved, on_progress=lambda d, n: progress.append((d, n))
        )

    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert (report.n_pairs, report.n_sent, report.n_labelled) == (4, 4, 3)
    conversation_of = dict(
        rows(config, "select conversation_id, external_id from log_conversations")
    )
    stored = rows(config, "select conversation_id, turn_index, category from feedback")
    assert {(conversation_of[c], t): category for c, t, category in stored} == EXPECTED
