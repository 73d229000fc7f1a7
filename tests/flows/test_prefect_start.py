"""Prefect's temporary server for `flywheel run`: runs started together on one Prefect home
both get a server of their own (one database migration at a time, no port taken twice)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flywheel.flows.temporary_server import RUN_RECORD_NAME, listening_socket

START_TIMEOUT_S = 600  # an upper bound against hanging, not a speed target

# Says it is ready, waits for the go file, starts the server, checks it answers, prints its URL.
RUN_ONE = textwrap.dedent(
    """
    import sys, time, urllib.request
    from pathlib import Path
    from flywheel.flows.prefect_env import quiet_prefect_defaults
    quiet_prefect_defaults()
    from flywheel.flows.temporary_server import temporary_prefect_server
    go = Path(sys.argv[1])
    Path(sys.argv[2]).touch()  # imported: ready to start
    while not go.exists():
        time.sleep(0.01)
    with temporary_prefect_server() as url:
        with urllib.request.urlopen(url + "/health", timeout=60) as answer:
            assert answer.read() == b"true"
        with urllib.request.urlopen(url + "/flow_runs/filter", data=b"{}", timeout=60) as runs:
            assert runs.status == 200
        print("served at", url, flush=True)
    """
)


def test_two_runs_starting_prefect_on_one_fresh_home_at_once_both_succeed(tmp_path: Path) -> None:
    home, go = tmp_path / "prefect-home", tmp_path / "go"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN_ONE, str(go), str(tmp_path / f"ready-{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert all(run.poll() is None for run in runs) and time.monotonic() < deadline
        time.sleep(0.05)
    go.touch()  # both start their server now: the database is migrated by one at a time
    outputs = [run.communicate(timeout=START_TIMEOUT_S)[0] for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    urls = [output.split("served at ")[1].split()[0] for output in outputs]
    assert urls[0] != urls[1]
    assert (home / RUN_RECORD_NAME).exists()


def test_the_servers_port_cannot_be_taken_between_choosing_it_and_serving_it() -> None:
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        with socket.socket() as intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
