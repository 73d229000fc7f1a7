"""tasks/general_check.py: each version measured once per set, stored per round, or skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

import flywheel.llm.general_check as llm_general_check
from flywheel.tasks.general_check import check_general, check_version
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The checkpoints actually measured (the real measurement, counted)."""
    calls: list[str] = []
    real = llm_general_check.measure_general_set

    def counting(checkpoint: str, **kwargs: object) -> llm_general_check.GeneralCheck:
        calls.append(str(checkpoint))
        return real(checkpoint, **kwargs)

    monkeypatch.setattr(llm_general_check, "measure_general_set", counting)
    return calls


def stored_rows(config) -> list[tuple]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(
            "select round_id, version_id, n_items, mean_nll, measured_at from general_checks "
            "order by round_id, version_id"
        ).fetchall()


def test_each_version_is_measured_once_and_stored_per_round(
    tmp_path: Path, tiny_student: Path, measured: list[str]
) -> None:
    config = load_config_in(tmp_path, "smoke", student={"max_new_tokens": 4})
    path = str(tiny_student)
    first = check_general(config, 1, ("r1-sft", path), ("v0", path))
    assert measured == [path, path]
    assert first.candidate is not None and first.candidate.n_items == 63
    assert first.candidate.mean_nll is not None and first.candidate.mean_nll > 0
    again = check_general(config, 1, ("r1-sft", path), ("v0", path))  # a resumed round
    later = check_general(config, 2, ("r2-dpo", path), ("v0", path))  # the champion again
    assert measured == [path, path, path]  # only r2-dpo is new
    assert again == first and later.champion == first.champion
    rows = stored_rows(config)
    assert [(r[0], r[1]) for r in rows] == [(1, "r1-sft"), (1, "v0"), (2, "r2-dpo"), (2, "v0")]
    assert rows[3][2:] == rows[1][2:]  # the champion's figures copied, measured_at included


def test_nothing_is_measured_when_the_check_is_off_or_no_checkpoint_is_local(
    tmp_path: Path, tiny_student: Path, measured: list[str]
) -> None:
    off = load_config_in(tmp_path, "smoke", evaluation={"general_check": False})
    assert check_version(off, 1, "v0", str(tiny_student)) is None
    on = load_config_in(tmp_path, "smoke")
    assert check_version(on, 1, "v0", str(tmp_path / "absent")) is None
    assert check_version(on, 1, "v0", None) is None
    assert measured == []
    assert stored_rows(on) == []
