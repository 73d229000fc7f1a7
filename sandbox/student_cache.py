"""Built sandbox students kept under the user's cache directory, keyed by their recipe.

Building the round-0 student takes minutes; its weights depend only on its recipe (hashed by
content in `student_recipe.py`: the build settings, seeds, task difficulty and the generated
corpus) and on the library versions and device that train it. So a build is copied into
`<cache>/students/<key>/`, the key hashing the recipe hash with those versions, and a second
clone, or a deleted `runs/` directory, copies it back in seconds instead of rebuilding. A copy
of the same build has the same files, so learning from it is the same as from a fresh build.
The student shipped in the package (`shipped_student.py`) is an entry of the same format.

Where: `student.cache_dir` when set, else `$FLYWHEEL_CACHE_DIR`, else
`$XDG_CACHE_HOME/flywheel`, else `~/.cache/flywheel`; `student.cache: false` turns it off.

An entry is written to a hidden temporary directory and renamed into place only when complete,
with a manifest (`flywheel-student.json`: the key, the recipe, each file's size and SHA-256)
written last. An entry whose manifest is missing, names another key, or does not match its
files (a build killed mid-way, a disk that filled up, a file edited by hand) is never used:
the student is rebuilt and the entry replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.llm.checkpoints import is_checkpoint

CACHE_DIR_ENV = "FLYWHEEL_CACHE_DIR"
MANIFEST_NAME = "flywheel-student.json"
KEY_VERSION = 2  # bump when the key's contents change meaning (2: the recipe hashed by content)
STALE_TEMP_S = 6 * 3600.0  # temporary entries older than this are leftovers of killed builds

# Libraries whose version can change the weights (numerics, tokenizer training, TRL's defaults).
RECIPE_LIBRARIES = ("torch", "transformers", "trl", "tokenizers", "datasets", "accelerate", "numpy")


@dataclass(frozen=True)
class CachedStudent:
    """A complete, verified cache entry and what was measured when it was built."""

    path: Path
    key: str
    heldout_accuracy: float
    n_parameters: int
    build_wall_s: float
    shipped: bool = False  # the student shipped with flywheel (`shipped_student.py`)


def cache_root(configured: str | None = None) -> Path:
    """The flywheel cache directory (see the module doc for the order of the settings)."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "flywheel"


def students_dir(configured: str | None = None) -> Path:
    return cache_root(configured) / "students"


def recipe_hash(recipe_fields: dict[str, Any]) -> str:
    """Hash of the recipe alone (`student_recipe.student_recipe_fields`): the same on every
    machine, so it names the shipped student too."""
    text = json.dumps({"key_version": KEY_VERSION, "recipe": recipe_fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def recipe_key(recipe_fields: dict[str, Any]) -> str:
    """The cache key: the recipe hash with the library versions and the device that train it."""
    text = json.dumps(recipe_description(recipe_fields), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def recipe_description(recipe_fields: dict[str, Any]) -> dict[str, Any]:
    """What the key hashes (also stored in the manifest, so an entry says what it was built from)."""
    return {
        "key_version": KEY_VERSION,
        "recipe": recipe_fields,
        "recipe_hash": recipe_hash(recipe_fields),
        "libraries": {name: _version(name) for name in RECIPE_LIBRARIES},
        "device": _device(),
    }


def find_cached_student(key: str, configured: str | None = None) -> CachedStudent | None:
    """The complete entry for `key`, or None (absent, partial, corrupt or unreadable)."""
    return read_entry(students_dir(configured) / key, lambda manifest: manifest.get("key") == key)


def read_entry(entry: Path, wanted: Callable[[dict[str, Any]], bool]) -> CachedStudent | None:
    """The entry at `entry` if its manifest is `wanted` and matches its files, else None."""
    try:
        manifest = json.loads((entry / MANIFEST_NAME).read_text())
        if not wanted(manifest) or not _files_match(entry, manifest["files"]):
            return None
        if not is_checkpoint(entry):
            return None
        return CachedStudent(
            path=entry,
            key=manifest["key"],
            heldout_accuracy=float(manifest["heldout_accuracy"]),
            n_parameters=int(manifest["n_parameters"]),
            build_wall_s=float(manifest["build_wall_s"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def copy_cached_student(entry: CachedStudent, target: Path) -> Path:
    """Copy the entry's checkpoint to `target` (absent) atomically: beside it, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.cache-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(entry.path, staging, ignore=shutil.ignore_patterns(MANIFEST_NAME))
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def store_student(
    checkpoint: Path,
    key: str,
    recipe_fields: dict[str, Any],
    heldout_accuracy: float,
    n_parameters: int,
    build_wall_s: float,
    configured: str | None = None,
) -> Path:
    """Copy a freshly built checkpoint into the cache as the entry for `key`; returns its path.

    A complete entry already there (a concurrent build) is kept; a partial one is replaced.
    """
    root = students_dir(configured)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    entry = root / key
    staging = root / f".{key}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(checkpoint, staging)
        files = {
            p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(staging.iterdir())
            if p.is_file()
        }
        manifest = {
            "key": key,
            "built_from": recipe_description(recipe_fields),
            "files": files,
            "heldout_accuracy": heldout_accuracy,
            "n_parameters": n_parameters,
            "build_wall_s": build_wall_s,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if find_cached_student(key, configured) is not None:
            return entry
        if entry.exists():  # partial or corrupt: replace it
            shutil.rmtree(entry)
        os.rename(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _files_match(entry: Path, files: dict[str, dict[str, Any]]) -> bool:
    on_disk = {p.name for p in entry.iterdir() if p.is_file()} - {MANIFEST_NAME}
    if on_disk != set(files):
        return False
    for name, expected in files.items():
        path = entry / name
        if path.stat().st_size != expected["size"] or file_sha256(path) != expected["sha256"]:
            return False
    return True


def _remove_stale_temporaries(root: Path) -> None:
    """Temporary entries of builds that were killed long ago (recent ones may be in progress)."""
    now = time.time()
    for path in root.glob(".*.tmp-*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_TEMP_S:
                shutil.rmtree(path, ignore_errors=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
