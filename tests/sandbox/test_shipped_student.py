"""The shipped round-0 student: it is the default recipe's, whole, and a fresh clone copies it."""

from __future__ import annotations

import shutil
from pathlib import Path

from flywheel.sandbox.shipped_student import (
    SHIP_COMMAND,
    SHIPPED_DIR,
    WEIGHTS_FILE,
    difference_from_shipped,
    shipped_recipe_hash,
    shipped_student,
)
from flywheel.sandbox.student import StudentRecipe, build_student
from flywheel.sandbox.student_cache import MANIFEST_NAME, recipe_hash
from flywheel.sandbox.student_recipe import student_recipe_fields
from tests.conftest import load_config_in


def _demo_recipe_hash(tmp_path: Path) -> str:
    config = load_config_in(tmp_path, "demo")
    return recipe_hash(student_recipe_fields(config, StudentRecipe()))


def test_the_demo_recipe_is_the_shipped_students(tmp_path: Path) -> None:
    shipped, current = shipped_recipe_hash(), _demo_recipe_hash(tmp_path)
    assert shipped == current, (
        f"the round-0 student's recipe changed (recipe hash {current}, shipped {shipped}): "
        f"run `{SHIP_COMMAND}` (about 15 min on 2 cores) and commit sandbox/data/student/"
    )


def test_the_shipped_files_match_their_manifest(tmp_path: Path) -> None:
    entry = shipped_student(_demo_recipe_hash(tmp_path))
    assert entry is not None and entry.shipped and entry.path == SHIPPED_DIR
    assert 0.05 <= entry.heldout_accuracy <= 0.40


def test_a_fresh_demo_config_copies_the_shipped_student(tmp_path: Path) -> None:
    config = load_config_in(tmp_path, "demo", student={"cache": False})

    report = build_student(config)

    assert report.from_cache and report.shipped and not report.built
    copied = {p.name: p.read_bytes() for p in report.path.iterdir()}
    shipped = {p.name: p.read_bytes() for p in SHIPPED_DIR.iterdir() if p.name != MANIFEST_NAME}
    assert copied == shipped


def test_a_build_with_other_weights_says_how_it_differs(tmp_path: Path) -> None:
    current = _demo_recipe_hash(tmp_path)
    build = shutil.copytree(SHIPPED_DIR, tmp_path / "build")
    assert difference_from_shipped(current, build, 0.1) is None
    weights = build / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    difference = difference_from_shipped(current, build, 0.123)
    assert difference is not None and "12.3% here" in difference
    assert difference_from_shipped("another-recipe", build, 0.1) is None
