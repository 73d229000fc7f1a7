"""Shared fixtures: configs whose every path lies in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from flywheel.config import Config, parse_config

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def load_config_in(tmp_path: Path, name: str = "smoke", **section_updates: dict) -> Config:
    """configs/<name>.yaml with warehouse, student and checkpoints moved under tmp_path."""
    data = yaml.safe_load((REPO_ROOT / "configs" / f"{name}.yaml").read_text())
    data["warehouse"]["path"] = str(tmp_path / "flywheel.duckdb")
    data["warehouse"]["lock_timeout_s"] = 5
    data["student"]["path"] = str(tmp_path / "student")
    data["training"]["output_dir"] = str(tmp_path / "models")
    for section, updates in section_updates.items():
        data.setdefault(section, {}).update(updates)
    return parse_config(data, f"configs/{name}.yaml (test copy)")


@pytest.fixture(autouse=True)
def student_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's own student cache: no test reads or fills the user's ~/.cache/flywheel."""
    path = tmp_path_factory.mktemp("student-cache")
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(path))
    return path


@pytest.fixture
def smoke_config(tmp_path: Path) -> Config:
    return load_config_in(tmp_path, "smoke")
