"""A real Prefect API server for the tests: the app of `prefect server start` (its scheduler and
other services running, the UI off) served by uvicorn on a socket this process bound first.

`prefect server start --port N` needs a port picked before the server binds it, which another
process on a busy machine can take in between; a socket bound here and handed to the server
(as flows/temporary_server.py does for a run's own server) leaves no such gap.
"""

from __future__ import annotations

import subprocess
import sys
from typing import IO

from flywheel.flows.temporary_server import listening_socket

# The server's process: `prefect server start`'s app on the listening socket it inherits.
SERVER_CHILD = """
import socket, sys, uvicorn
from prefect.server.api.server import create_app
listening = socket.socket(fileno=int(sys.argv[1]))
uvicorn.Server(uvicorn.Config(create_app(final=True), log_level="warning")).run(
    sockets=[listening]
)
"""


def start_prefect_api(env: dict[str, str], log: IO[str]) -> tuple[subprocess.Popen, str]:
    """The server in a session of its own, with its API URL; stop it by its process group."""
    with listening_socket() as sock:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER_CHILD, str(sock.fileno())],
            env={**env, "PREFECT_SERVER_UI_ENABLED": "false"},
            pass_fds=(sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return server, f"http://127.0.0.1:{sock.getsockname()[1]}/api"
