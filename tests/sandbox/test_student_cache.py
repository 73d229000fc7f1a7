"""The student cache: a second build of the same recipe is a copy of the first, in seconds;
another recipe misses; a partial or corrupt entry is never used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flywheel.sandbox import skills, student_cache, student_recipe
from flywheel.sandbox.student import (
    StudentRecipe,
    build_student,
    cached_student,
    student_cache_key,
)
from flywheel.sandbox.student_cache import MANIFEST_NAME, cache_root, students_dir
from tests.conftest import load_config_in
from tests.sandbox.test_student import SMALL


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding one build of the SMALL recipe (built once for the module)."""
    root = tmp_path_factory.mktemp("built")
    config = load_config_in(root, student={"cache_dir": str(root / "cache")})
    report = build_student(config, recipe=SMALL)
    assert report.built and not report.from_cache
    assert report.cache_path == root / "cache" / "students" / student_cache_key(config, SMALL)
    return root / "cache"


def _config_with_cache(tmp_path: Path, built_cache: Path, **student: object):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    return load_config_in(tmp_path, student={"cache_dir": str(cache), **student})


def _files(checkpoint: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(checkpoint.iterdir())}


def test_second_build_of_the_same_recipe_is_a_cache_hit_with_identical_files(
    tmp_path: Path, built_cache: Path
) -> None:
    config = _config_with_cache(tmp_path, built_cache)
    entry = cached_student(config, SMALL)
    assert entry is not None

    copied = build_student(config, recipe=SMALL)

    assert copied.from_cache and not copied.built and copied.cache_path == entry.path
    assert copied.heldout_accuracy == entry.heldout_accuracy
    expected = {k: v for k, v in _files(entry.path).items() if k != MANIFEST_NAME}
    assert _files(copied.path) == expected
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_changed_recipe_misses_the_cache(tmp_path: Path, built_cache: Path) -> None:
    config = _config_with_cache(tmp_path, built_cache)
    other_seed = _config_with_cache(tmp_path / "seed", built_cache, seed=1)
    assert cached_student(config, SMALL) is not None
    assert cached_student(config, StudentRecipe(**{**SMALL.__dict__, "max_steps": 7})) is None
    assert cached_student(other_seed, SMALL) is None
    assert cached_student(load_config_in(tmp_path, student={"cache": False}), SMALL) is None


def test_the_key_covers_the_corpus_and_library_versions_not_where_code_lives(
    smoke_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = student_cache_key(smoke_config, SMALL)
    assert "code" not in student_cache.recipe_description({"any": 1})  # no source-file hashes
    monkeypatch.setattr(skills, "FORMAT_INSTRUCTIONS", ("Reply with Answer: only.",))
    student_recipe.corpus_sha256.cache_clear()
    assert student_cache_key(smoke_config, SMALL) != key  # other prompt wording, other corpus
    monkeypatch.undo()
    student_recipe.corpus_sha256.cache_clear()
    assert student_cache_key(smoke_config, SMALL) == key
    monkeypatch.setattr(student_cache, "_version", lambda package: "9.9")
    assert student_cache_key(smoke_config, SMALL) != key


@pytest.mark.parametrize("damage", ["no_manifest", "truncated_weights", "other_key", "extra_file"])
def test_a_partial_or_corrupt_entry_is_ignored(
    tmp_path: Path, built_cache: Path, damage: str
) -> None:
    config = _config_with_cache(tmp_path, built_cache)
    entry = cached_student(config, SMALL)
    assert entry is not None
    manifest = entry.path / MANIFEST_NAME
    if damage == "no_manifest":  # a build killed before its manifest was written
        manifest.unlink()
    elif damage == "truncated_weights":
        weights = entry.path / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "other_key":
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "key": "x"}))
    else:
        (entry.path / "stray.bin").write_bytes(b"0")
    assert cached_student(config, SMALL) is None


def test_a_corrupt_entry_is_rebuilt_and_replaced(tmp_path: Path, built_cache: Path) -> None:
    config = _config_with_cache(tmp_path, built_cache)
    entry = cached_student(config, SMALL)
    assert entry is not None
    (entry.path / "model.safetensors").write_bytes(b"not weights")

    rebuilt = build_student(config, recipe=SMALL)

    assert rebuilt.built and not rebuilt.from_cache
    replaced = cached_student(config, SMALL)
    assert replaced is not None and replaced.path == entry.path
    assert _files(rebuilt.path) == {
        k: v for k, v in _files(replaced.path).items() if k != MANIFEST_NAME
    }
    assert [p.name for p in students_dir(config.student.cache_dir).iterdir()] == [entry.key]


def test_cache_location_follows_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "flywheel"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "flywheel"
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(str(tmp_path / "setting")) == tmp_path / "setting"
