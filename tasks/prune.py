"""Retention: every champion is kept, and the last K rejected candidates (`training.keep_rejected`).

Older rejected candidates lose their checkpoint directory (and, for an rm+rl candidate, its
reward model `<path>-rm`); their `model_versions` row stays, with `checkpoint_deleted_at` set.
Undecided candidates and every champion (current or retired) are never touched, nor any path
outside `training.output_dir`. Run after each round when K is set, and by `flywheel models prune`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from flywheel.config import Config
from flywheel.llm.stages.registry import stage_named
from flywheel.logs import step_logger
from flywheel.warehouse.lifecycle import mark_checkpoint_deleted, rejected_checkpoints


@dataclass(frozen=True)
class PrunedCheckpoint:
    version_id: str
    round_id: int
    paths: list[Path]  # the checkpoint and what its stage wrote beside it (rm+rl: reward model)
    n_bytes: int


@dataclass(frozen=True)
class PruneReport:
    pruned: list[PrunedCheckpoint]
    kept: list[str]  # rejected versions whose checkpoints stay
    dry_run: bool

    @property
    def n_bytes(self) -> int:
        return sum(p.n_bytes for p in self.pruned)

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [
            f"{verb} {p.version_id} (round {p.round_id}): {human_bytes(p.n_bytes)} in "
            + ", ".join(str(path) for path in p.paths)
            for p in self.pruned
        ]
        freed = "would free" if self.dry_run else "freed"
        lines.append(
            f"{freed} {human_bytes(self.n_bytes)} ({self.n_bytes} bytes) from "
            f"{len(self.pruned)} rejected checkpoint(s); kept {len(self.kept)} rejected and "
            "every champion"
        )
        return "\n".join(lines)


def human_bytes(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def versions_to_prune(newest_first: list[str], keep_rejected: int) -> list[str]:
    """The rejected versions retention deletes: all but the newest `keep_rejected`."""
    return newest_first[keep_rejected:]


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def prune_checkpoints(config: Config, keep_rejected: int, dry_run: bool = False) -> PruneReport:
    """Delete the checkpoints of rejected candidates older than the last `keep_rejected`."""
    rejected = rejected_checkpoints(config.warehouse)
    doomed = set(versions_to_prune([version for version, *_ in rejected], keep_rejected))
    output_dir = Path(config.training.output_dir)
    pruned, kept = [], []
    for version_id, checkpoint_path, stage, round_id in rejected:
        checkpoint = Path(checkpoint_path)
        if version_id not in doomed or not _inside(checkpoint, output_dir):
            kept.append(version_id)
            continue
        paths = [checkpoint, *stage_named(stage).side_outputs(checkpoint)]
        paths = [path for path in paths if path.exists()]
        n_bytes = sum(directory_bytes(path) for path in paths)
        if not dry_run:
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
            mark_checkpoint_deleted(config.warehouse, version_id)
        pruned.append(PrunedCheckpoint(version_id, round_id, paths, n_bytes))
    return PruneReport(pruned, kept, dry_run)


def prune_after_round(config: Config) -> PruneReport | None:
    """Apply `training.keep_rejected` (nothing when it is null)."""
    keep = config.training.keep_rejected
    if keep is None:
        return None
    report = prune_checkpoints(config, keep)
    if report.pruned:
        step_logger(__name__).info("retention: %s", report.summary().splitlines()[-1])
    return report
