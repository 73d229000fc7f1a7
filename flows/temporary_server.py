"""Prefect's temporary API server for `flywheel run`, owned by flywheel instead of Prefect.

Prefect starts the same server (uvicorn on `create_app`, the UI off) when no PREFECT_API_URL
is set, but as a plain child in the terminal's process group: Ctrl-C kills it before the run
can record why it stopped, and a SIGKILL of the run leaves it orphaned. This one runs in a
session of its own, so a signal to the group reaches only flywheel, which stops it last; and
the kernel stops it when flywheel dies (PR_SET_PDEATHSIG). Its output goes to
`$PREFECT_HOME/flywheel-temporary-server.log`, not to the terminal.

Two runs at once must not trip over each other. The port is bound here and the listening
socket handed to the server (no free port that another process could take before the server
binds it, and no health check answered by someone else's server). Its start, when Prefect
migrates the database of `$PREFECT_HOME`, holds a file lock on that home: two runs starting on
one home migrate one after the other, never the same SQLite file at once.
When the run began and ended is kept in `$PREFECT_HOME/flywheel-last-run.json`: the next run's
first line estimates its time outside the rounds from it (flows/estimate.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
HEALTH_POLL_S = 0.2
STOP_GRACE_S = 5.0
DRAIN_TIMEOUT_S = 5.0  # per queue; with the stop, well inside flows.signals.GRACE_S


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# The server's process: uvicorn on Prefect's app, serving the socket it inherits (argv[1]).
SERVER_CHILD = """
import socket, sys, uvicorn
listening = socket.socket(fileno=int(sys.argv[1]))
config = uvicorn.Config(
    "prefect.server.api.server:create_app", factory=True, log_level="error", lifespan="on"
)
uvicorn.Server(config).run(sockets=[listening])
"""
START_LOCK_NAME = "flywheel-server-start.lock"
RUN_RECORD_NAME = "flywheel-last-run.json"


def listening_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1 and listening, for the server to inherit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _server_command(fd: int) -> list[str]:
    return [sys.executable, "-c", SERVER_CHILD, str(fd)]


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


def prefect_home() -> Path:
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    return home


def server_log_path() -> Path:
    """Where the temporary server's own output goes (its shutdown is noisy under load)."""
    return prefect_home() / "flywheel-temporary-server.log"


@contextlib.contextmanager
def one_start_at_a_time(home: Path) -> Iterator[None]:
    """An exclusive lock on `home` while a server starts (and migrates its database)."""
    with open(home / START_LOCK_NAME, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def record_run_span(home: Path, started_at: datetime, ended_at: datetime) -> None:
    """Keep when the last run on this Prefect home began and ended (UTC), for the next run's
    estimate of its time outside the rounds (flows/estimate.py)."""
    span = {"started_at": started_at.isoformat(), "ended_at": ended_at.isoformat()}
    with contextlib.suppress(OSError):
        (home / RUN_RECORD_NAME).write_text(json.dumps(span))


def last_run_span() -> tuple[datetime, datetime] | None:
    """(began, ended) in UTC of the last run that finished on this Prefect home, or None."""
    from prefect.settings import PREFECT_HOME

    try:
        span = json.loads((Path(PREFECT_HOME.value()) / RUN_RECORD_NAME).read_text())
        return datetime.fromisoformat(span["started_at"]), datetime.fromisoformat(span["ended_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    from prefect.settings import PREFECT_API_URL

    home, started_at = prefect_home(), now_utc()
    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
    else:
        with own_server(home) as api_url:
            yield api_url
    record_run_span(home, started_at, now_utc())


@contextlib.contextmanager
def own_server(home: Path) -> Iterator[str]:
    """Our temporary server on `home`, its API URL set in Prefect's settings while it runs."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with one_start_at_a_time(home), listening_socket() as sock:
        api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        process = start_server(sock.fileno(), server_log_path())
        try:
            wait_until_healthy(process, api_url, startup_timeout_s(), server_log_path())
        except BaseException:
            stop_server(process)
            raise
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            try:
                yield api_url
            finally:
                drain_prefect_workers()
    finally:
        stop_server(process)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def start_server(fd: int, log_path: Path) -> subprocess.Popen:
    """The server process, in a session of its own, serving the listening socket `fd`."""
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            _server_command(fd),
            env=_server_environment(),
            start_new_session=True,
            preexec_fn=_die_with_parent,
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def drain_prefect_workers() -> None:
    """Send the logs and events still queued to the server before it stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=DRAIN_TIMEOUT_S)
