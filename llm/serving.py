"""Serving backends: a checkpoint served on an OpenAI-compatible port for as long as it answers.

`serve_checkpoint` starts the configured command (`vllm serve`, `transformers serve`, any
server) for one model version in a process group of its own, under llm/serve_guard.py (which
stops the group should this process die without stopping it), waits until GET /health or
/v1/models answers, hands back the endpoint to call, and stops the whole group (SIGTERM,
then SIGKILL) however the block ends. A command that is not installed, exits, or is never
healthy, and a configured port already in use, fail with `ServeError`: the server's last log
lines and the fix; the process is gone by then. `fixed_endpoint` checks (or reloads) a URL
the user keeps up to date, so that it never answers with another version's weights.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flywheel.config import (
    SANDBOX_URL,
    SERVER_COMMAND,
    VLLM_COMMAND,
    EndpointConfig,
    ServeConfig,
    StudentConfig,
)
from flywheel.errors import InputError
from flywheel.llm.port_owner import port_owner

GUARD = Path(__file__).with_name("serve_guard.py")  # stops the server if this process dies
LOG_TAIL_LINES = 15
POLL_S = 0.5
PORT_ATTEMPTS = 3  # a port taken before our server bound it: try this many
EXIT_GRACE_S = 10.0  # after failed calls: time for a crashed server's exit to reach us
FIXES = {
    "vllm": "install vLLM on a machine with a GPU (pip install vllm), or set student.backend: "
    "server (any OpenAI-compatible command) or local",
    "server": "check student.serve.command (run it by hand with a checkpoint path to see it "
    "work), or set student.backend: local",
}


class ServeError(InputError):
    """The served model could not start or answer; the message holds the server's last lines."""


class PortTakenError(ServeError):
    """Another process holds the port our server was to listen on."""


class ServedEndpoint(EndpointConfig):
    """An endpoint the flow serves itself; `identity` keys the call cache whatever its port."""

    identity: str


@dataclass(frozen=True)
class ServedModel:
    """A running server of one model version: where to call it and what it serves."""

    backend: str
    version_id: str
    checkpoint: Path
    base_url: str  # http://host:port/v1
    model: str  # the request `model` field
    log_path: Path
    pid: int
    process: subprocess.Popen = field(repr=False, compare=False)

    def require_running(self, what: str, grace_s: float = 0.0) -> None:
        """ServeError with the server's last lines when it has exited (it crashed while
        answering: the answers stored so far are kept, a rerun asks only the rest).
        `grace_s`: how long to wait for the exit to show (the guard notices its server's exit
        within its poll interval, later on a busy machine), given when calls failed."""
        try:
            code = self.process.wait(timeout=grace_s) if grace_s > 0 else self.process.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            raise ServeError(
                f"the {self.backend} serving {self.version_id} exited with status {code} "
                f"{what}; its last lines ({self.log_path}):\n{log_tail(self.log_path)}\n"
                "Fix: see the server's error above (out of memory: lower "
                "student.serve.gpu_memory_utilization or max_model_len); a rerun resumes."
            )


def request_model(template: str, checkpoint: str | Path | None, version_id: str) -> str:
    """The `model` field for a version: `{checkpoint}` and `{version}` filled in."""
    text = template.replace("{version}", version_id)
    return text.replace("{checkpoint}", "" if checkpoint is None else str(checkpoint))


def serve_argv(
    serve: ServeConfig, backend: str, checkpoint: str | Path, version_id: str, port: int
) -> list[str]:
    """The server command for one checkpoint: `serve.command`, or the backend's default
    (vllm adds `--max-model-len` when set), then `serve.extra_args`."""
    template = serve.command or (VLLM_COMMAND if backend == "vllm" else SERVER_COMMAND)
    values = {
        "checkpoint": shlex.quote(str(checkpoint)),
        "version": shlex.quote(version_id),
        "host": serve.host,
        "port": port,
        "tensor_parallel_size": serve.tensor_parallel_size,
        "gpu_memory_utilization": serve.gpu_memory_utilization,
        "dtype": serve.dtype,
        "max_model_len": serve.max_model_len or "",
    }
    argv = shlex.split(template.format(**values))
    if serve.command is None and backend == "vllm" and serve.max_model_len is not None:
        argv += ["--max-model-len", str(serve.max_model_len)]
    return argv + list(serve.extra_args)


def require_command(argv: list[str], backend: str) -> str:
    """The executable's path; ServeError naming the fix when it is not installed."""
    path = shutil.which(argv[0])
    if path is None:
        what = "vLLM is not installed here" if backend == "vllm" else "it is not installed"
        raise ServeError(
            f"student.backend {backend}: cannot run {argv[0]!r} ({what}; not on PATH). "
            f"Fix: {FIXES.get(backend, FIXES['server'])}."
        )
    return path


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def log_tail(path: Path, n_lines: int = LOG_TAIL_LINES) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    kept = [line for line in lines if line.strip()][-n_lines:]
    return "\n".join(f"  | {line}" for line in kept) or "  | (the server wrote nothing)"


_live: dict[int, subprocess.Popen] = {}  # pid -> server still running, stopped at exit too
_live_lock = threading.Lock()


def stop_server(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM the server's process group and wait up to `timeout_s` for it (the guard exits
    once the server has); then SIGKILL whatever is left of the group, and reap the guard."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=timeout_s if sig == signal.SIGTERM else 30.0)
        except subprocess.TimeoutExpired:
            continue
    with _live_lock:
        _live.pop(process.pid, None)


@atexit.register
def _stop_live_servers() -> None:
    with _live_lock:
        running = list(_live.values())
    for process in running:
        stop_server(process, 5.0)


def wait_until_healthy(
    process: subprocess.Popen, host: str, port: int, timeout_s: float, describe: str, log_path: Path
) -> None:
    """Poll GET /health and /v1/models until one answers 200 from our own server; ServeError
    when the process exits first or `timeout_s` passes, PortTakenError when another process
    holds the port (it answered in our place, or our server could not bind it)."""
    root_url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5.0) as client:
        while True:
            code = process.poll()
            if code is not None:
                if port_in_use(host, port):
                    raise PortTakenError(f"{describe}: port {port} was taken by another process")
                raise ServeError(
                    f"{describe} exited with status {code} before it answered; its last lines "
                    f"({log_path}):\n{log_tail(log_path)}"
                )
            if _answers(client, root_url):
                owner = port_owner(port, process.pid)  # the guard leads our server's group
                if owner == "ours" or (owner == "unknown" and process.poll() is None):
                    return
                if owner == "other":
                    raise PortTakenError(f"{describe}: another process answers on port {port}")
            if time.monotonic() > deadline:
                raise ServeError(
                    f"{describe} did not answer GET /health or /v1/models within {timeout_s:g} s "
                    f"(student.serve.health_timeout_s); its last lines ({log_path}):\n"
                    f"{log_tail(log_path)}"
                )
            time.sleep(POLL_S)


def _answers(client: httpx.Client, root_url: str) -> bool:
    for path in ("/health", "/v1/models"):
        try:
            if client.get(root_url + path).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
    return False


def start_server(argv: list[str], describe: str, log_path: Path, append: bool) -> subprocess.Popen:
    """The server command under the guard, in a process group of its own, logging to
    `log_path` (appended to on a retry)."""
    env = os.environ | {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with log_path.open("ab" if append else "wb") as log:
        try:
            process = subprocess.Popen(
                [sys.executable, str(GUARD), str(os.getpid()), *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        except OSError as e:
            raise ServeError(f"{describe} could not start: {e}. Fix: {FIXES['server']}.") from e
    with _live_lock:
        _live[process.pid] = process
    return process


def start_healthy(
    serve: ServeConfig, backend: str, checkpoint: str | Path, version_id: str, log_path: Path
) -> tuple[subprocess.Popen, int]:
    """Our server started and answering on its port: (process, port). A port chosen free but
    taken by another process before the server bound it is given up for another one."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = serve.port or free_port(serve.host)
        argv = serve_argv(serve, backend, checkpoint, version_id, port)
        describe = f"the {backend} serving {version_id} (`{shlex.join(argv)}`)"
        process = start_server(argv, describe, log_path, append=attempt > 1)
        try:
            timeout_s = serve.health_timeout_s
            wait_until_healthy(process, serve.host, port, timeout_s, describe, log_path)
            return process, port
        except PortTakenError as e:
            stop_server(process, serve.stop_timeout_s)
            if serve.port or attempt == PORT_ATTEMPTS:
                fix = "stop that process, or set student.serve.port: 0"
                raise ServeError(f"{e}. Fix: {fix}.") from None
            with log_path.open("a") as log:
                log.write(f"flywheel: {e}; trying another port\n")
        except BaseException as e:
            stop_server(process, serve.stop_timeout_s)
            if isinstance(e, ServeError):
                raise ServeError(f"{e}\nFix: {FIXES.get(backend, FIXES['server'])}.") from None
            raise
    raise AssertionError("unreachable")


@contextmanager
def serve_checkpoint(
    serve: ServeConfig, backend: str, checkpoint: str | Path, version_id: str, log_dir: Path
) -> Iterator[ServedModel]:
    """Serve `checkpoint` (model version `version_id`) until the block ends.

    The server's output goes to `log_dir/<version>-<backend>.log`. Whatever happens (an error,
    Ctrl-C), the server's process group is stopped when the block ends.
    """
    host = serve.host
    if serve.port and port_in_use(host, serve.port):
        raise ServeError(
            f"student.serve.port {serve.port} on {host} is already in use (another server, or "
            "one left from an earlier run), so the flow cannot serve "
            f"{version_id} there. Fix: set student.serve.port: 0 (a free port each time) or "
            "stop the process holding it."
        )
    require_command(serve_argv(serve, backend, checkpoint, version_id, serve.port), backend)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{version_id}-{backend}.log"
    process, port = start_healthy(serve, backend, checkpoint, version_id, log_path)
    try:
        model = request_model(serve.model, checkpoint, version_id)
        root_url = f"http://{host}:{port}"
        yield ServedModel(
            backend,
            version_id,
            Path(checkpoint),
            f"{root_url}/v1",
            model,
            log_path,
            process.pid,
            process,
        )
    finally:
        stop_server(process, serve.stop_timeout_s)


def student_sampling(student: StudentConfig, sample_idx: int) -> dict[str, object]:
    """The served student decodes as local generation does: same max_new_tokens, greedy
    unless do_sample, seeded samples."""
    if not student.do_sample:
        return {"temperature": 0.0, "max_tokens": student.max_new_tokens}
    return {
        "temperature": student.temperature,
        "max_tokens": student.max_new_tokens,
        "seed": student.seed + sample_idx,
    }


def served_endpoint(
    student: StudentConfig,
    served: ServedModel,
    stop_ids: list[int],
    stops: list[str],
    sample_idx: int = 0,
) -> ServedEndpoint:
    """The endpoint of a served version: the checkpoint's own stop tokens (as ids for vLLM,
    whose `stop` strings never see special tokens; as strings for other servers)."""
    serve = student.serve
    extra = {"stop_token_ids": stop_ids} if served.backend == "vllm" else {}
    return ServedEndpoint(
        name=f"student-{served.backend}",
        base_url=served.base_url,
        model=served.model,
        identity=f"served:{served.backend}",
        max_concurrency=serve.max_concurrency,
        timeout_s=serve.timeout_s,
        max_retries=serve.max_retries,
        stop=[] if served.backend == "vllm" else stops,
        extra_body=extra,
        **student_sampling(student, sample_idx),
    )


def served_model_ids(base_url: str, timeout_s: float = 10.0) -> list[str] | None:
    """The ids GET /v1/models lists, or None when the server does not list them."""
    try:
        reply = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout_s)
        reply.raise_for_status()
        return [str(m["id"]) for m in reply.json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def run_reload_command(
    template: str, checkpoint: str | Path | None, version_id: str, timeout_s: float
) -> None:
    """Run `student.endpoint_reload_command` for a version; ServeError unless it exits 0."""
    argv = shlex.split(request_model(template, checkpoint, version_id))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServeError(
            f"student.endpoint_reload_command for {version_id} failed: {e}. Fix: run "
            f"`{shlex.join(argv)}` by hand and correct the command."
        ) from e
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise ServeError(
            f"student.endpoint_reload_command for {version_id} exited with status "
            f"{done.returncode}:\n{tail}\nFix: run `{shlex.join(argv)}` by hand and correct it."
        )


def fixed_endpoint(
    student: StudentConfig,
    version_id: str,
    checkpoint: str | Path | None,
    sample_idx: int = 0,
) -> EndpointConfig:
    """`student.endpoint` made to answer as `version_id`: its reload command run, its model
    named for the version, and refused when its /v1/models lists other models only.

    The embedded sandbox's student is a simulated model without weights: it is not checked.
    """
    endpoint = student.endpoint
    if endpoint is None:
        raise ValueError("student.endpoint is not set")
    model = request_model(endpoint.model, checkpoint, version_id)
    answering = endpoint.model_copy(
        update={
            "model": model,
            "stop": endpoint.stop or [],
            **student_sampling(student, sample_idx),
        }
    )
    if endpoint.base_url == SANDBOX_URL:
        return answering
    if student.endpoint_reload_command is not None:
        run_reload_command(
            student.endpoint_reload_command, checkpoint, version_id, student.serve.health_timeout_s
        )
    listed = served_model_ids(endpoint.base_url)
    if listed is not None and model not in listed:
        raise ServeError(
            f"student.endpoint {endpoint.base_url} serves {', '.join(listed) or 'no model'}, "
            f"not {model!r}, the version {version_id} that must answer (answering would store "
            "another version's answers under its name). Fix: serve that checkpoint there (or "
            "set student.endpoint_reload_command to do it), or use student.backend: server or "
            "vllm so the flow serves each version itself."
        )
    return answering
