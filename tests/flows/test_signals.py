"""`flywheel run` as a terminal, systemd or Kubernetes stops it: Ctrl-C to the process group,
SIGTERM to the process, SIGKILL; and a run started on a machine whose CPUs are all busy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.flows.signals import GRACE_ENV, Interrupted, interrupt_signal
from flywheel.warehouse.store import connect
from tests.flows.test_round import (
    decisions,
    run_flywheel,
    sandbox_get,
    start_sandbox_server,
    write_smoke_config,
)

STOP_TIMEOUT_S = 300  # an upper bound against hanging, not a speed target


def children_of(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_judging(run: subprocess.Popen, url: str, judge_model: str) -> None:
    """Return once the run's judge has been called; fail if the run ends first."""
    while run.poll() is None:
        if sandbox_get(url, "/sandbox/stats")["models"].get(judge_model, {}).get("total", 0):
            return
        time.sleep(0.05)
    pytest.fail(f"the run ended before judging: {run.stdout.read()}")


def round_status(db_path: Path) -> tuple[str, str | None]:
    with connect(db_path, read_only=True) as con:
        return con.execute("select status, error from rounds where round_id = 1").fetchone()


@pytest.fixture
def arena(tmp_path: Path, smoke_student: Path, monkeypatch: pytest.MonkeyPatch):
    """A smoke config whose endpoints are a sandbox server outside the run's process group.

    The runs' stop grace is half the tests' own upper bound: a run ends, by its cleanup or by
    the grace, before a test stops waiting for it, however busy the machine (the round's mark
    does not wait for either; the grace has a test of its own).
    """
    monkeypatch.setenv(GRACE_ENV, str(STOP_TIMEOUT_S / 2))
    server, url = start_sandbox_server(write_smoke_config(tmp_path))
    try:
        yield write_smoke_config(tmp_path, smoke_student, url), url
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("signum", "to_group", "exit_status"),
    [
        (signal.SIGINT, True, 130),
        # the group's delivery is the Ctrl-C case's, the exit status the process case's
        pytest.param(signal.SIGTERM, True, 143, marks=pytest.mark.slow),
        (signal.SIGTERM, False, 143),
    ],
    ids=["ctrl-c-to-the-group", "sigterm-to-the-group", "sigterm-to-the-process"],
)
def test_a_signal_stops_the_run_and_marks_the_round_interrupted_for_a_rerun(
    arena: tuple[Path, str], tmp_path: Path, signum: int, to_group: bool, exit_status: int
) -> None:
    config_path, url = arena
    run = run_flywheel(config_path, tmp_path / "prefect")
    wait_until_judging(run, url, "sandbox-judge")
    helpers = children_of(run.pid)
    if to_group:
        os.killpg(run.pid, signum)
    else:
        run.send_signal(signum)
    output, _ = run.communicate(timeout=STOP_TIMEOUT_S)

    assert run.returncode == exit_status, output
    assert f"Resume with: flywheel run --config {config_path}" in output
    assert "Traceback" not in output
    assert round_status(tmp_path / "flywheel.duckdb") == (
        "interrupted",
        f"interrupted by {signal.Signals(signum).name}",
    ), output
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(is_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(is_alive(pid) for pid in helpers), "a helper process outlived the run"
    if signum != signal.SIGINT:
        return  # the resume after a Ctrl-C is the same as after a SIGTERM

    rerun = run_flywheel(config_path, tmp_path / "prefect")
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output
    assert decisions(tmp_path / "flywheel.duckdb")[0][:2] == (1, "done")


def test_a_sigterm_after_prefects_server_died_still_marks_the_round_and_exits_143(
    arena: tuple[Path, str], tmp_path: Path
) -> None:
    """While a signal unwinds the run, Prefect's engine reports each crashed task and flow run
    to its API; with the server gone those reports fail. The round's mark must not wait for
    them, nor their connection errors replace the signal as the run's outcome."""
    config_path, url = arena
    run = run_flywheel(config_path, tmp_path / "prefect")
    wait_until_judging(run, url, "sandbox-judge")
    [server] = [pid for pid in children_of(run.pid) if b"uvicorn" in command_line(pid)]
    run.send_signal(signal.SIGSTOP)  # the run sees the server die only after the SIGTERM
    os.kill(server, signal.SIGKILL)
    while is_alive(server):
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    run.send_signal(signal.SIGCONT)
    output, _ = run.communicate(timeout=STOP_TIMEOUT_S)

    assert run.returncode == 143, output
    assert f"Resume with: flywheel run --config {config_path}" in output
    assert round_status(tmp_path / "flywheel.duckdb") == (
        "interrupted",
        "interrupted by SIGTERM",
    ), output


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_sigkill_of_the_run_takes_its_prefect_server_with_it(
    arena: tuple[Path, str], tmp_path: Path
) -> None:
    config_path, url = arena
    run = run_flywheel(config_path, tmp_path / "prefect")
    wait_until_judging(run, url, "sandbox-judge")
    helpers = children_of(run.pid)
    assert helpers, "the run started no Prefect server"
    run.kill()
    run.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(is_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(is_alive(pid) for pid in helpers), "the Prefect server was orphaned"


def test_a_round_starts_and_finishes_while_every_cpu_is_busy(
    arena: tuple[Path, str], tmp_path: Path
) -> None:
    """Prefect's own start-up timeout (20 s) is not enough on a loaded machine."""
    config_path, _url = arena
    n_hogs = 4 * (os.cpu_count() or 2)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n_hogs)]
    try:
        run = run_flywheel(config_path, tmp_path / "prefect")
        db_path = tmp_path / "flywheel.duckdb"
        while run.poll() is None and not _round_started(db_path):
            time.sleep(0.5)
    finally:
        for hog in hogs:
            hog.kill()
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    assert decisions(tmp_path / "flywheel.duckdb")[0][:2] == (1, "done")


def _round_started(db_path: Path) -> bool:
    if not db_path.exists():
        return False
    try:
        with connect(db_path, read_only=True, timeout_s=0) as con:
            return bool(con.execute("select count(*) from rounds").fetchone()[0])
    except Exception:
        return False


STUCK_CLEANUP = """
import sys, time
from flywheel.flows.signals import interrupt_on_signals
with interrupt_on_signals("Resume with: flywheel run"):
    try:
        print("ready", flush=True)
        time.sleep(600)
    finally:
        time.sleep(600)  # a cleanup that never ends
"""


def test_a_cleanup_longer_than_the_grace_ends_with_the_signals_status(tmp_path: Path) -> None:
    env = {**os.environ, GRACE_ENV: "1"}
    run = subprocess.Popen(
        [sys.executable, "-c", STUCK_CLEANUP],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout.readline().strip() == "ready"
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=STOP_TIMEOUT_S)
    assert run.returncode == 143, output
    assert "still stopping after 1 s; exiting. Resume with: flywheel run" in output


STUCK_CLEANUP_WITH_A_FIRST_SIGNAL_ACTION = """
import time
from flywheel.flows.signals import interrupt_on_signals, on_first_signal
def mark(signum):
    print(f"marked by signal {signum}", flush=True)
with interrupt_on_signals("Resume with: flywheel run"), on_first_signal(mark):
    try:
        print("ready", flush=True)
        time.sleep(600)
    finally:
        time.sleep(600)  # a cleanup that never ends (Prefect reporting to a server gone)
"""


def test_the_first_signals_action_runs_while_the_cleanup_is_stuck(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [sys.executable, "-c", STUCK_CLEANUP_WITH_A_FIRST_SIGNAL_ACTION],
        env={**os.environ, GRACE_ENV: str(STOP_TIMEOUT_S)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert run.stdout.readline().strip() == "ready"
        run.send_signal(signal.SIGTERM)
        assert run.stdout.readline().strip() == f"marked by signal {signal.SIGTERM.value}"
        assert run.poll() is None  # the cleanup is still stuck: the action did not wait for it
    finally:
        run.kill()
        run.wait()


def test_an_error_raised_while_a_signal_unwinds_the_run_means_that_signal() -> None:
    try:
        try:
            raise Interrupted(signal.SIGTERM)
        except Interrupted:
            raise ConnectionRefusedError("the crash report found no server")  # noqa: B904
    except ConnectionRefusedError as error:
        assert interrupt_signal(error) == signal.SIGTERM
    assert interrupt_signal(ConnectionRefusedError("no signal behind it")) is None
