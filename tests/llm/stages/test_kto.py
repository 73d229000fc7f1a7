"""The KTO stage: a few steps on the tiny model (loss logged, weights changed), its label
weights inside TRL's advised range, and a batch of one refused by the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from flywheel.config import ConfigError, parse_config
from flywheel.llm.stages.kto import KtoConfig, kto_dataset, label_weights, train_kto
from tests.conftest import REPO_ROOT

CFG = KtoConfig(learning_rate=1e-3, max_steps=3, batch_size=4, max_length=64)


def _row(i: int, desirable: bool) -> dict:
    answer = f"Answer: {2 * i + 1}" if desirable else f"Answer: {i}"
    return {
        "prompt": [{"role": "user", "content": f"What is {i} plus {i + 1}?"}],
        "completion": [{"role": "assistant", "content": answer}],
        "label": desirable,
    }


# eight desirable answers, four undesirable (a champion that won two battles in three)
ROWS = [_row(i, desirable=i % 3 != 0) for i in range(12)]


def test_kto_trains_from_unpaired_labels_and_records_the_weights(
    base_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "kto"
    result = train_kto(base_checkpoint, ROWS, out, CFG, seed=0)
    assert result.n_examples == 12 and result.metrics["n_steps"] == 3
    assert result.first_loss is not None and result.last_loss is not None
    before = load_file(str(base_checkpoint / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)
    recorded = result.hyperparams
    assert (recorded["n_desirable"], recorded["n_undesirable"]) == (8, 4)
    assert recorded["desirable_weight"] == 1.0
    assert recorded["undesirable_weight"] == pytest.approx(8 / (4 * 7 / 6), abs=1e-4)
    assert recorded["beta"] == CFG.beta and recorded["stage"] == "kto"


def test_the_seed_sets_the_order_kto_reads_its_rows_in() -> None:
    def order(seed: int) -> list[str]:
        return [row["prompt"][0]["content"] for row in kto_dataset(ROWS, seed)]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(1)) == sorted(row["prompt"][0]["content"] for row in ROWS)


@pytest.mark.parametrize(("n_desirable", "n_undesirable"), [(8, 4), (3, 9), (5, 5), (1, 40)])
def test_balanced_weights_fall_in_trls_advised_range(n_desirable: int, n_undesirable: int) -> None:
    weights = label_weights([True] * n_desirable + [False] * n_undesirable, balance=True)
    ratio = (weights.desirable_weight * n_desirable) / (weights.undesirable_weight * n_undesirable)
    assert 1 <= ratio <= 4 / 3
    assert 1.0 in (weights.desirable_weight, weights.undesirable_weight)


def test_unbalanced_weights_are_both_one() -> None:
    weights = label_weights([True, True, False], balance=False)
    assert (weights.desirable_weight, weights.undesirable_weight) == (1.0, 1.0)
    assert weights.ratio == 2.0


def test_a_kto_batch_of_one_is_refused_naming_the_fix() -> None:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["training"]["kto"] = {"batch_size": 1}
    with pytest.raises(ConfigError) as refused:
        parse_config(data, "smoke.yaml")
    message = str(refused.value)
    assert "training.kto.batch_size = 1" in message
    assert "set training.kto.batch_size to 2 or more" in message
