"""Prefect's temporary API server for `flywheel run`, owned by flywheel instead of Prefect.

Prefect starts the same server (uvicorn on `create_app`, the UI off) when no PREFECT_API_URL
is set, but as a plain child in the terminal's process group: Ctrl-C kills it before the run
can record why it stopped, and a SIGKILL of the run leaves it orphaned. This one runs in a
session of its own, so a signal to the group reaches only flywheel, which stops it last; and
the kernel stops it when flywheel dies (PR_SET_PDEATHSIG). Its output goes to
`$PREFECT_HOME/flywheel-temporary-server.log`, not to the terminal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
HEALTH_POLL_S = 0.2
STOP_GRACE_S = 5.0
DRAIN_TIMEOUT_S = 5.0  # per queue; with the stop, well inside flows.signals.GRACE_S


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_command(port: int) -> list[str]:
    import prefect

    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(prefect.__file__).parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]


def _server_environment() -> dict[str, str]:
    from prefect.settings import get_current_settings

    return {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }


def _is_healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def server_log_path() -> Path:
    """Where the temporary server's own output goes (its shutdown is noisy under load)."""
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    return home / "flywheel-temporary-server.log"


def wait_until_healthy(
    process: subprocess.Popen, api_url: str, timeout_s: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while not _is_healthy(api_url):
        if process.poll() is not None:
            raise RuntimeError(
                f"Prefect's temporary server exited with status {process.returncode} before it "
                f"was ready (its output is in {log_path}). Fix: check PREFECT_HOME is writable, "
                "or start `prefect server start` and export "
                "PREFECT_API_URL=http://127.0.0.1:4200/api."
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Prefect's temporary server was not ready after {timeout_s:.0f} s (a busy "
                "machine?). Fix: raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or start "
                "`prefect server start` and export PREFECT_API_URL=http://127.0.0.1:4200/api."
            )
        time.sleep(HEALTH_POLL_S)


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def startup_timeout_s() -> float:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    return float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())


@contextlib.contextmanager
def temporary_prefect_server() -> Iterator[str | None]:
    """Prefect's API for this run: the user's (PREFECT_API_URL, yielded as is) or a temporary
    server of our own, whose URL is yielded while it runs."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log_path = server_log_path()
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            _server_command(port),
            env=_server_environment(),
            start_new_session=True,
            preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(process, api_url, startup_timeout_s(), log_path)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            try:
                yield api_url
            finally:
                drain_prefect_workers()
    finally:
        stop_server(process)


def drain_prefect_workers() -> None:
    """Send the logs and events still queued to the server before it stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=DRAIN_TIMEOUT_S)
