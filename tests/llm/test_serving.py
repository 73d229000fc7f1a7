"""llm/serving.py: the commands it builds, and a served checkpoint's lifecycle and failures.

The failing servers are small real commands (`python -c ...`) that exit, hang or spawn a
worker, so that each failure is exercised as a user would meet it, in well under a second.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from flywheel.config import ServeConfig
from flywheel.llm.serving import (
    ServeError,
    require_command,
    serve_argv,
    serve_checkpoint,
)

PYTHON = sys.executable


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def gone_within(pids: list[int], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def python_server(code: str, **settings: object) -> ServeConfig:
    """A 'server' command running `code` with the checkpoint path as sys.argv[1]."""
    command = f"{PYTHON} -c {json.dumps(code)} {{checkpoint}}"
    return ServeConfig(command=command, **settings)


def test_vllm_command_carries_every_setting() -> None:
    serve = ServeConfig(
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        dtype="bfloat16",
        max_model_len=4096,
        extra_args=["--enable-prefix-caching"],
    )
    argv = serve_argv(serve, "vllm", "/models/r1 sft", "r1-sft", 8123)
    assert argv == [
        "vllm",
        "serve",
        "/models/r1 sft",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--tensor-parallel-size",
        "2",
        "--gpu-memory-utilization",
        "0.5",
        "--dtype",
        "bfloat16",
        "--max-model-len",
        "4096",
        "--enable-prefix-caching",
    ]
    assert "--max-model-len" not in serve_argv(ServeConfig(), "vllm", "/m", "v0", 1)


def test_server_default_is_transformers_serve_of_the_checkpoint() -> None:
    argv = serve_argv(ServeConfig(), "server", "/models/v0", "v0", 9000)
    assert argv == ["transformers", "serve", "/models/v0", "--host", "127.0.0.1", "--port", "9000"]


def test_vllm_backend_is_refused_when_vllm_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing installed
    with pytest.raises(ServeError, match=r"vLLM is not installed here.*Fix: install vLLM"):
        require_command(serve_argv(ServeConfig(), "vllm", "/m", "v0", 1), "vllm")
    with pytest.raises(ServeError, match="not installed"):
        with serve_checkpoint(ServeConfig(), "vllm", tmp_path, "v0", tmp_path / "logs"):
            pass


def test_a_command_that_does_not_exist_fails_naming_the_fix(tmp_path: Path) -> None:
    serve = ServeConfig(command="no-such-server-xyz {checkpoint} --port {port}")
    with pytest.raises(ServeError, match=r"'no-such-server-xyz'.*Fix: check student.serve"):
        with serve_checkpoint(serve, "server", tmp_path, "v0", tmp_path / "logs"):
            pass


def test_a_server_that_cannot_load_the_checkpoint_fails_with_its_last_log_lines(
    tmp_path: Path,
) -> None:
    code = (
        "import sys; print('loading', sys.argv[1]); "
        "print('OSError: no file named model.safetensors', file=sys.stderr); sys.exit(3)"
    )
    with pytest.raises(ServeError) as raised:
        with serve_checkpoint(python_server(code), "server", tmp_path, "v0", tmp_path / "logs"):
            pytest.fail("an exited server must not be used")
    message = str(raised.value)
    assert "exited with status 3 before it answered" in message
    assert "| OSError: no file named model.safetensors" in message
    assert "Fix: check student.serve.command" in message


def test_a_server_never_healthy_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    """The server and the worker it spawned are both stopped after the health timeout."""
    code = (
        "import os, subprocess, sys, time; "
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        "open(sys.argv[1], 'w').write('%d %d' % (os.getpid(), worker.pid)); "
        "print('still loading', flush=True); time.sleep(600)"
    )
    pid_file = tmp_path / "pids"
    serve = python_server(code, health_timeout_s=2.0, stop_timeout_s=5.0)
    with pytest.raises(ServeError) as raised:
        with serve_checkpoint(serve, "server", pid_file, "v0", tmp_path / "logs"):
            pytest.fail("a server that never answered must not be used")
    assert "within 2 s (student.serve.health_timeout_s)" in str(raised.value)
    assert "| still loading" in str(raised.value)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2 and gone_within(pids)


def test_a_configured_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        serve = python_server("import sys; open(sys.argv[1], 'w')", port=port)
        marker = tmp_path / "started"
        with pytest.raises(ServeError, match=rf"port {port} on 127.0.0.1 is already in use"):
            with serve_checkpoint(serve, "server", marker, "v0", tmp_path / "logs"):
                pass
    assert not marker.exists()


def test_a_failure_inside_the_block_stops_the_server(tmp_path: Path) -> None:
    """A healthy server (a tiny HTTP server answering /health) is stopped when answering
    raises, and its port is free again."""
    code = (
        "import http.server, os, sys\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()\n"
    )
    script = tmp_path / "health_server.py"
    script.write_text(code)
    serve = ServeConfig(command=f"{PYTHON} {script} {{checkpoint}} {{port}}", stop_timeout_s=5.0)
    pid_file = tmp_path / "pid"
    with pytest.raises(RuntimeError, match="answering failed"):
        with serve_checkpoint(serve, "server", pid_file, "v0", tmp_path / "logs") as served:
            assert served.base_url.startswith("http://127.0.0.1:")
            assert served.model == str(pid_file)  # {checkpoint}: what the request names
            assert alive(served.pid)
            raise RuntimeError("answering failed")
    assert gone_within([int(pid_file.read_text())])
    assert not os.path.exists(f"/proc/{served.pid}") or not alive(served.pid)


def test_preflight_refuses_a_vllm_backend_without_vllm_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.config import ConfigError
    from flywheel.preflight import check_before_run
    from tests.conftest import load_config_in

    config = load_config_in(tmp_path, student={"backend": "vllm"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"cannot run 'vllm' \(vLLM is not installed here"):
        check_before_run(config)


KILLED_PARENT = """
import sys
from pathlib import Path
from flywheel.config import ServeConfig
from flywheel.llm.serving import serve_checkpoint

serve = ServeConfig(command=sys.argv[1], stop_timeout_s=5.0)
with serve_checkpoint(serve, "server", Path(sys.argv[2]), "v0", Path(sys.argv[3])) as served:
    print(served.pid, flush=True)
    sys.stdin.read()  # until killed
"""


def test_a_killed_flywheel_process_leaves_no_server_behind(tmp_path: Path) -> None:
    """SIGKILL gives the parent no chance to stop its server: the guard does it."""
    import signal
    import subprocess

    code = (
        "import http.server, os, sys\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()\n"
    )
    script = tmp_path / "health_server.py"
    script.write_text(code)
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen(
        [
            PYTHON,
            "-c",
            KILLED_PARENT,
            f"{PYTHON} {script} {{checkpoint}} {{port}}",
            str(pid_file),
            str(tmp_path / "logs"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        guard_pid = int(parent.stdout.readline())
        server_pid = int(pid_file.read_text())
        assert alive(guard_pid) and alive(server_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert gone_within([guard_pid, server_pid])
    finally:
        parent.kill()


def test_a_served_student_decodes_like_local_generation_with_its_own_stop_tokens() -> None:
    from flywheel.config import StudentConfig
    from flywheel.llm.client import ChatRequest
    from flywheel.llm.serving import ServedModel, served_endpoint

    student = StudentConfig(max_new_tokens=96, do_sample=False)
    for backend, stop, extra in (
        ("vllm", None, {"stop_token_ids": [0, 2]}),  # vLLM's stop strings skip special tokens
        ("server", ["<|endoftext|>", "<|im_end|>"], {}),
    ):
        served = ServedModel(
            backend, "v0", Path("/m"), "http://127.0.0.1:1/v1", "/m", Path("l"), 1, None
        )
        endpoint = served_endpoint(student, served, [0, 2], ["<|endoftext|>", "<|im_end|>"])
        body = ChatRequest.for_endpoint(endpoint, [{"role": "user", "content": "hi"}]).body("/m")
        assert body["max_tokens"] == 96 and body["temperature"] == 0.0 and "seed" not in body
        assert body.get("stop") == stop
        assert {k: body[k] for k in extra} == extra
        assert endpoint.identity == f"served:{backend}"  # the cache key ignores the port
    sampled = StudentConfig(do_sample=True, temperature=0.7, seed=3)
    served = ServedModel(
        "server", "v0", Path("/m"), "http://127.0.0.1:1/v1", "/m", Path("l"), 1, None
    )
    endpoint = served_endpoint(sampled, served, [0], ["<|end|>"], sample_idx=2)
    assert (endpoint.temperature, endpoint.seed) == (0.7, 5)


HEALTH_SERVER = (
    "import http.server, os, sys\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()\n"
)


def test_a_port_taken_between_choosing_and_binding_is_given_up_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else's server takes the chosen port first and answers the health check: the
    flow sees it is not its own, and serves on another port instead of talking to it."""
    import http.server
    import threading

    from flywheel.llm import serving

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"someone else's server")

        def log_message(self, *args: object) -> None:
            pass

    stranger = http.server.HTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    taken = stranger.server_address[1]
    chosen = iter([taken])
    monkeypatch.setattr(serving, "free_port", lambda host: next(chosen, None) or free(host))
    script = tmp_path / "health_server.py"
    script.write_text(HEALTH_SERVER)
    serve = ServeConfig(command=f"{PYTHON} {script} {{checkpoint}} {{port}}", stop_timeout_s=5.0)
    pid_file = tmp_path / "pid"
    try:
        with serve_checkpoint(serve, "server", pid_file, "v0", tmp_path / "logs") as served:
            assert f":{taken}/" not in served.base_url
            assert alive(int(pid_file.read_text()))  # ours, started on the second port
        log = (tmp_path / "logs" / "v0-server.log").read_text()
        assert f"port {taken}" in log and "trying another port" in log
    finally:
        stranger.shutdown()


def free(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
