"""The student answering through each backend: local generation, a checkpoint the step serves
itself (`transformers serve`, the CPU stand-in for vLLM), and a fixed URL that must prove it
serves the version that answers. Every answer records which backend and weights produced it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from flywheel.config import Config, ConfigError
from flywheel.llm.checkpoints import weights_sha256
from flywheel.llm.serving import ServeError
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.answer import answer_as_student
from flywheel.warehouse.store import connect, now_utc
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in
from tests.llm.turn_end_checkpoint import ANSWER, QUESTION, build_turn_end_checkpoint

ROUND_ID = 1


@pytest.fixture(scope="module")
def turn_end_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_turn_end_checkpoint(tmp_path_factory.mktemp("turn-end") / "v0")


def insert_messages(config: Config, conversations: list[list[dict[str, str]]]) -> list[str]:
    rows = [
        {
            "prompt_id": f"q{i}",
            "messages": json.dumps(messages),
            "prompt_text": messages[-1]["content"],
            "source": "test",
            "category": "arithmetic",
            "split": "pool",
            "slice_id": ROUND_ID,
            "status": "active",
            "n_chars": len(messages[-1]["content"]),
            "added_at": now_utc(),
        }
        for i, messages in enumerate(conversations)
    ]
    with connect(config.warehouse.path) as con:
        insert_new(con, "prompts", rows, ["prompt_id"])
    return [r["prompt_id"] for r in rows]


def stored_answers(config: Config) -> dict[str, tuple]:
    query = (
        "select model_id, response_text, finish_reason, backend, served_model, weights_sha256 "
        "from responses order by model_id"
    )
    with connect(config.warehouse.path, read_only=True) as con:
        return {row[0]: row[1:] for row in con.execute(query).fetchall()}


def test_served_and_local_student_stop_at_the_end_of_turn_token_and_record_their_weights(
    tmp_path: Path, turn_end_checkpoint: Path
) -> None:
    """transformers serve is served the checkpoint's stop tokens; a failed start stores
    nothing, and the rerun answers; a third run finds every answer and starts no server."""
    exits = f"{sys.executable} -c 'import sys; print(\"cannot load\", sys.argv[1]); exit(3)'"
    broken = load_config_in(
        tmp_path,
        student={"backend": "server", "serve": {"command": f"{exits} {{checkpoint}}"}},
    )
    prompt_ids = insert_messages(broken, [QUESTION])
    with pytest.raises(ServeError, match="cannot load"):
        answer_as_student(broken, ROUND_ID, prompt_ids, "v0", str(turn_end_checkpoint))
    assert stored_answers(broken) == {}

    served = load_config_in(tmp_path, student={"backend": "server"})
    counts = answer_as_student(served, ROUND_ID, prompt_ids, "v0", str(turn_end_checkpoint))
    assert counts.n_generated == 1 and counts.n_failed == 0
    local = load_config_in(tmp_path, student={"backend": "local"})
    answer_as_student(local, ROUND_ID, prompt_ids, "v0-local", str(turn_end_checkpoint))

    weights = weights_sha256(turn_end_checkpoint)
    checkpoint = str(turn_end_checkpoint)
    assert stored_answers(served) == {
        "v0": (ANSWER, "stop", "server", checkpoint, weights),
        "v0-local": (ANSWER, "stop", "local", checkpoint, weights),
    }
    with connect(served.warehouse.path, read_only=True) as con:
        [(request_json, endpoint)] = con.execute(
            "select request_json, endpoint from llm_calls"
        ).fetchall()
    request = json.loads(request_json)
    assert endpoint == "student-server"
    assert request["max_tokens"] == served.student.max_new_tokens  # as local generation
    assert request["stop"] == ["<|endoftext|>", "<|im_end|>"]
    assert f"weights={weights}" in request["cache_tag"]

    again = answer_as_student(broken, ROUND_ID, prompt_ids, "v0", checkpoint)  # no server
    assert again.n_existing == 1 and again.n_generated == 0


def test_a_fixed_url_without_a_way_to_serve_the_right_version_is_refused(
    tmp_path: Path,
) -> None:
    endpoint = {"name": "student", "base_url": "http://127.0.0.1:8000/v1", "model": "champion"}
    with pytest.raises(ConfigError, match=r"student.endpoint.model = \"champion\".*stale"):
        load_config_in(tmp_path, student={"endpoint": endpoint})
    for allowed in ({"model": "{version}"}, {"model": "{checkpoint}"}):
        load_config_in(tmp_path, student={"endpoint": endpoint | allowed})
    load_config_in(
        tmp_path, student={"endpoint": endpoint, "endpoint_reload_command": "reload {checkpoint}"}
    )


def test_a_fixed_url_serving_another_version_is_refused_and_answers_nothing(
    tmp_path: Path,
) -> None:
    """The sandbox server, at its real URL, lists its models: not the version that must
    answer. A reload command that fails is refused too, with its output."""
    base = load_config_in(tmp_path)
    with start_sandbox(base.sandbox) as server:
        endpoint = {"name": "student", "base_url": server.base_url, "model": "{version}"}
        config = load_config_in(tmp_path, student={"endpoint": endpoint})
        prompt_ids = insert_messages(config, [QUESTION])
        with pytest.raises(ServeError, match=r"serves sandbox-strong.*not 'r1-sft'.*Fix: serve"):
            answer_as_student(config, ROUND_ID, prompt_ids, "r1-sft", None)
        failing = f"{sys.executable} -c 'print(\"no such model {{version}}\"); exit(1)'"
        reloading = load_config_in(
            tmp_path,
            student={
                "endpoint": endpoint | {"model": "sandbox-strong"},
                "endpoint_reload_command": failing,
            },
        )
        with pytest.raises(ServeError, match=r"exited with status 1:\nno such model r1-sft"):
            answer_as_student(reloading, ROUND_ID, prompt_ids, "r1-sft", None)
        reloaded = load_config_in(
            tmp_path,
            student={
                "endpoint": endpoint | {"model": "sandbox-strong"},
                "endpoint_reload_command": f"{sys.executable} -c 'pass' {{checkpoint}}",
            },
        )
        counts = answer_as_student(reloaded, ROUND_ID, prompt_ids, "r1-sft", None)
    assert counts.n_generated == 1
    [(_, _, backend, served_model, weights)] = stored_answers(config).values()
    assert (backend, served_model, weights) == ("endpoint", "sandbox-strong", None)


CRASHING_SERVER = """
import http.server, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def do_POST(self):
        print('CUDA out of memory (simulated)', flush=True)
        os._exit(1)
http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), Handler).serve_forever()
"""


def test_a_server_that_dies_while_answering_fails_the_step_with_its_last_lines(
    tmp_path: Path, turn_end_checkpoint: Path
) -> None:
    script = tmp_path / "crashing_server.py"
    script.write_text(CRASHING_SERVER)
    serve = {"command": f"{sys.executable} {script} {{checkpoint}} {{port}}", "max_retries": 1}
    config = load_config_in(tmp_path, student={"backend": "server", "serve": serve})
    prompt_ids = insert_messages(config, [QUESTION])
    with pytest.raises(ServeError, match=r"exited with status 1 while answering") as raised:
        answer_as_student(config, ROUND_ID, prompt_ids, "v0", str(turn_end_checkpoint))
    assert "| CUDA out of memory (simulated)" in str(raised.value)
    assert stored_answers(config) == {}


REFUSING_SERVER = """
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')
    def do_POST(self):
        body = json.dumps({"error": {"message": "The model `v0` does not exist.", "code": 400}})
        self.send_response(400); self.send_header("content-type", "application/json")
        self.end_headers(); self.wfile.write(body.encode())
http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), Handler).serve_forever()
"""


def test_a_server_refusing_every_request_fails_the_step_with_its_message_sent_once(
    tmp_path: Path, turn_end_checkpoint: Path
) -> None:
    from flywheel.tasks.responses import StudentAnswersFailedError

    script = tmp_path / "refusing_server.py"
    script.write_text(REFUSING_SERVER)
    serve = {"command": f"{sys.executable} {script} {{checkpoint}} {{port}}", "max_retries": 3}
    config = load_config_in(tmp_path, student={"backend": "server", "serve": serve})
    prompt_ids = insert_messages(config, [QUESTION])
    with pytest.raises(StudentAnswersFailedError, match=r"v0 answered none of its 1 prompts"):
        answer_as_student(config, ROUND_ID, prompt_ids, "v0", str(turn_end_checkpoint))
    with connect(config.warehouse.path, read_only=True) as con:
        [(error, n_attempts)] = con.execute("select error, n_attempts from llm_calls").fetchall()
    assert "HTTP 400" in error and "does not exist" in error and n_attempts == 1
    assert stored_answers(config) == {}
