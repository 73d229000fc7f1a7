"""Runs a server command and stops it when the flywheel process that started it is gone.

`python -m flywheel.llm.serve_guard <parent pid> <command...>`: llm/serving.py starts this
in a process group of its own; the guard starts the command in that group, exits with its
status, and, should the parent die without stopping it (SIGKILL, os._exit after a second
Ctrl-C), SIGTERMs the whole group, then SIGKILLs it. Nothing here imports flywheel or torch:
it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.5
KILL_AFTER_S = 15.0


def parent_alive(pid: int) -> bool:
    return os.getppid() == pid


def stop_group(server: subprocess.Popen) -> None:
    """SIGTERM the group (the guard only notes it), SIGKILL it if the server lingers."""
    os.killpg(os.getpgid(0), signal.SIGTERM)
    try:
        server.wait(timeout=KILL_AFTER_S)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(os.getpgid(0), signal.SIGKILL)  # the guard too, and any worker left


def main(argv: list[str]) -> int:
    """Run the command; on SIGTERM (the group's, sent by llm/serving.py) wait for the server
    to exit, so that the caller's wait covers the server's shutdown (a GPU freed)."""
    parent_pid, command = int(argv[0]), argv[1:]
    stopping = False

    def note_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, note_stop)
    try:
        server = subprocess.Popen(command)
    except OSError as e:
        print(f"cannot start {command[0]!r}: {e}", file=sys.stderr, flush=True)
        return 127
    while True:
        code = server.poll()
        if code is not None:
            return code
        if stopping:
            try:
                return server.wait(timeout=KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                os.killpg(os.getpgid(0), signal.SIGKILL)
        if not parent_alive(parent_pid):
            stop_group(server)
            return 1
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
