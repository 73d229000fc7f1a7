"""Every config in configs/ loads as it is (a user runs them without editing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import load_config
from flywheel.preflight import student_problem
from tests.conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_shipped_config_loads(path: Path) -> None:
    assert load_config(path).schedule.rounds >= 1


def test_real_small_names_a_student_fetched_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh clone: nothing fetched into runs/ yet
    config = load_config(REPO_ROOT / "configs" / "real-small.yaml")
    assert config.student.path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert student_problem(config) is None
