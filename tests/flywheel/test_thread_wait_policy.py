"""flywheel/__init__.py: waiting OpenMP threads sleep by default (set before torch loads), and a
value the user set stays."""

from __future__ import annotations

import os
import subprocess
import sys

PRINT_POLICY = "import flywheel.flows.cli, os; print(os.environ.get('OMP_WAIT_POLICY'))"


def policy_seen(user_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value is not None:
        env["OMP_WAIT_POLICY"] = user_value
    output = subprocess.run(
        [sys.executable, "-c", PRINT_POLICY], env=env, check=True, capture_output=True, text=True
    )
    return output.stdout.strip()


def test_the_cli_process_waits_passively_by_default() -> None:
    assert policy_seen(None) == "PASSIVE"


def test_a_wait_policy_the_user_set_is_kept() -> None:
    assert policy_seen("ACTIVE") == "ACTIVE"
