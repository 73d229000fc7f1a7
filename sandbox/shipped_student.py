"""The round-0 student shipped with flywheel, so a fresh clone's first round starts in seconds.

`sandbox/data/student/` holds the demo's student (the default recipe, seed 0), built by
`python -m flywheel.sandbox.shipped_student`, in the student cache's entry format: the
checkpoint's files and a manifest with each file's SHA-256, the recipe it was built from and its
`recipe_hash`, its held-out accuracy and its build time. Every machine that asks for that
recipe starts from these same weights, whatever its CPU or library versions (a build differs
from machine to machine; a copy does not); another recipe is built and cached as before.

`python -m flywheel.sandbox.shipped_student [--config PATH]` rebuilds the student of the
config's recipe on this machine and writes it here (commit `sandbox/data/student/` after).
`tests/sandbox/test_shipped_student.py` fails, naming that command, when the default recipe no
longer matches the shipped student.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from flywheel.sandbox.student_cache import MANIFEST_NAME, CachedStudent, file_sha256, read_entry

SHIPPED_DIR = Path(__file__).parent / "data" / "student"
SHIP_COMMAND = "python -m flywheel.sandbox.shipped_student"
WEIGHTS_FILE = "model.safetensors"


def shipped_manifest() -> dict[str, Any] | None:
    try:
        return json.loads((SHIPPED_DIR / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def shipped_recipe_hash() -> str | None:
    manifest = shipped_manifest()
    return None if manifest is None else manifest.get("built_from", {}).get("recipe_hash")


def shipped_student(recipe_hash: str) -> CachedStudent | None:
    """The shipped student if it was built from `recipe_hash` and its files are whole."""
    entry = read_entry(
        SHIPPED_DIR, lambda manifest: manifest["built_from"]["recipe_hash"] == recipe_hash
    )
    return None if entry is None else CachedStudent(**{**entry.__dict__, "shipped": True})


def difference_from_shipped(recipe_hash: str, built: Path, heldout_accuracy: float) -> str | None:
    """How a fresh build of `recipe_hash` differs from the shipped student; None when it is
    not the shipped recipe or its weights are byte-identical."""
    shipped = shipped_student(recipe_hash)  # its files verified against its manifest
    if shipped is None:
        return None
    shipped_weights = shipped_manifest()["files"][WEIGHTS_FILE]["sha256"]
    if file_sha256(built / WEIGHTS_FILE) == shipped_weights:
        return None
    return (
        f"its weights differ from the shipped student's (held-out accuracy "
        f"{heldout_accuracy:.1%} here, {shipped.heldout_accuracy:.1%} shipped): this CPU or "
        "these library versions train the same recipe to other numbers"
    )


def ship(cache_entry: Path) -> Path:
    """Replace the shipped student with a complete cache entry (its files and manifest)."""
    staging = SHIPPED_DIR.with_name(".student.new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cache_entry, staging)
    shutil.rmtree(SHIPPED_DIR, ignore_errors=True)
    staging.rename(SHIPPED_DIR)
    return SHIPPED_DIR


def main(argv: list[str] | None = None) -> int:
    from flywheel.config import load_config
    from flywheel.sandbox.student import build_student

    parser = argparse.ArgumentParser(description="rebuild the shipped round-0 student here")
    parser.add_argument("--config", default="configs/demo.yaml")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    report = build_student(config, force=True)
    if report.cache_path is None:
        print("the build was not kept in the student cache (student.cache: false?); not shipped")
        return 1
    print(f"shipped {ship(report.cache_path)} (held-out accuracy {report.heldout_accuracy:.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
