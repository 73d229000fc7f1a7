"""Retention: every champion and the last K rejected checkpoints stay; history rows stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import Config
from flywheel.flows.cli import main
from flywheel.tasks.prune import prune_after_round, prune_checkpoints, versions_to_prune
from flywheel.warehouse.store import connect_warehouse
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in

VERSIONS = [  # (version, round, stage, status)
    ("v0", 0, "base", "retired"),
    ("r1-sft", 1, "sft", "rejected"),
    ("r2-dpo", 2, "dpo", "champion"),
    ("r3-rm-rl", 3, "rm+rl", "rejected"),
    ("r4-sft", 4, "sft", "rejected"),
    ("r5-dpo", 5, "dpo", "candidate"),
]


def _fake_checkpoint(path: Path, n_bytes: int) -> None:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"\0" * n_bytes)
    (path / "config.json").write_text("{}")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    config = load_config_in(tmp_path, training={"keep_rejected": 1})
    models = Path(config.training.output_dir)
    rows = []
    for version, round_id, stage, status in VERSIONS:
        path = models / version
        _fake_checkpoint(path, 1000 + round_id)
        if stage == "rm+rl":
            _fake_checkpoint(models / f"{version}-rm", 500)
        rows.append(
            {
                "version_id": version,
                "round_id": round_id,
                "stage": stage,
                "checkpoint_path": str(path),
                "status": status,
                "created_at": f"2026-12-0{round_id + 1} 00:00:00",
            }
        )
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "model_versions", rows, ["version_id"])
    return config


def _deleted(config: Config) -> dict[str, bool]:
    with connect_warehouse(config.warehouse) as con:
        rows = con.execute(
            "select version_id, checkpoint_deleted_at is not null from model_versions"
        ).fetchall()
    return dict(rows)


def test_retention_keeps_the_newest_k_rejected() -> None:
    assert versions_to_prune(["c", "b", "a"], 1) == ["b", "a"]
    assert versions_to_prune(["c", "b", "a"], 0) == ["c", "b", "a"]
    assert versions_to_prune(["a"], 3) == []


def test_prune_deletes_old_rejected_checkpoints_and_keeps_their_rows(config: Config) -> None:
    models = Path(config.training.output_dir)
    report = prune_checkpoints(config, keep_rejected=1)
    # r4-sft is the newest rejected (kept); r3 (with its reward model) and r1 go
    assert [p.version_id for p in report.pruned] == ["r3-rm-rl", "r1-sft"]
    assert report.n_bytes == (1003 + 2 + 500 + 2) + (1001 + 2)
    assert f"freed 2.5 KB ({report.n_bytes} bytes)" in report.summary()
    assert not (models / "r3-rm-rl").exists() and not (models / "r3-rm-rl-rm").exists()
    assert not (models / "r1-sft").exists()
    for kept in ("v0", "r2-dpo", "r4-sft", "r5-dpo"):
        assert (models / kept).is_dir()
    assert _deleted(config) == {
        "v0": False,
        "r1-sft": True,
        "r2-dpo": False,
        "r3-rm-rl": True,
        "r4-sft": False,
        "r5-dpo": False,
    }
    assert prune_checkpoints(config, keep_rejected=1).pruned == []  # nothing left to do


def test_prune_dry_run_deletes_nothing(config: Config, capsys: pytest.CaptureFixture) -> None:
    models = Path(config.training.output_dir)
    config_file = Path(config.warehouse.path).parent / "config.yaml"
    import yaml

    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["models", "prune", "--dry-run", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "would delete r3-rm-rl" in out and "would free" in out
    assert (models / "r1-sft").is_dir() and not any(_deleted(config).values())
    assert main(["models", "prune", "--keep", "0", "--config", str(config_file)]) == 0
    assert "freed" in capsys.readouterr().out
    assert not (models / "r4-sft").exists() and (models / "r2-dpo").is_dir()


def test_a_checkpoint_outside_the_output_dir_is_never_deleted(
    config: Config, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere" / "r0-sft"
    _fake_checkpoint(outside, 10)
    with connect_warehouse(config.warehouse) as con:
        row = {
            "version_id": "r0-sft",
            "round_id": 0,
            "stage": "sft",
            "checkpoint_path": str(outside),
            "status": "rejected",
            "created_at": "2026-11-01 00:00:00",
        }
        insert_new(con, "model_versions", [row], ["version_id"])
    report = prune_after_round(config)
    assert report is not None and "r0-sft" in report.kept and outside.is_dir()


def test_no_retention_setting_keeps_everything(tmp_path: Path) -> None:
    assert prune_after_round(load_config_in(tmp_path)) is None


def test_prune_without_a_retention_setting_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import yaml

    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(load_config_in(tmp_path).model_dump(mode="json")))
    assert main(["models", "prune", "--config", str(config_file)]) == 2
    assert "training.keep_rejected is not set" in capsys.readouterr().err
