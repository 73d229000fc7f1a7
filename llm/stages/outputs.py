"""Where stages write while they train: TRL's scratch directories under
`<training.output_dir>/.scratch`, and the clean-up of what killed runs left there."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flywheel.config import Config

SCRATCH_DIR = ".scratch"


@contextmanager
def scratch_directory(out_path: str | Path, kind: str) -> Iterator[str]:
    """TRL's scratch directory, under `<output_dir>/.scratch` so a killed run's leftovers are
    found and removed by `remove_staging_dirs` (the system temp dir is shared by everyone);
    `.scratch` itself goes when the last stage using it is done."""
    root = Path(out_path).parent / SCRATCH_DIR
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix=f"flywheel-{kind}-", dir=root) as scratch:
            yield scratch
    finally:
        with contextlib.suppress(OSError):  # not empty: another stage is training
            root.rmdir()


def remove_staging_dirs(config: Config) -> list[Path]:
    """Delete what killed runs left in `training.output_dir`: hidden staging copies of
    checkpoints being published (`.<name>.tmp-*`, `.<name>.old-*`) and TRL scratch dirs.

    Call it only while holding the warehouse's run lock (no other run is writing there).
    """
    output_dir = Path(config.training.output_dir)
    if not output_dir.is_dir():
        return []
    leftovers = [
        path
        for pattern in (".*.tmp-*", ".*.old-*", SCRATCH_DIR)
        for path in output_dir.glob(pattern)
        if path.is_dir()
    ]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers
