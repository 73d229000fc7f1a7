"""DPO's `reference: precomputed`: the base's log-probs computed once, no second model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flywheel.llm.stages.dpo import DpoConfig, train_dpo

CFG = DpoConfig(learning_rate=1e-3, max_steps=2, batch_size=4, max_length=64)


def _pair(i: int) -> dict[str, list[dict[str, str]]]:
    return {
        "prompt": [{"role": "user", "content": f"What is {i} plus {i + 1}?"}],
        "chosen": [{"role": "assistant", "content": f"Answer: {2 * i + 1}"}],
        "rejected": [{"role": "assistant", "content": f"Answer: {i}"}],
    }


ROWS = [_pair(i) for i in range(8)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_precomputed_reference_trains_like_the_copy_and_caches_only_in_scratch(
    base_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import Dataset

    cache_files: list[str] = []
    cache_file_path = Dataset._get_cache_file_path

    def recorded(self: Dataset, fingerprint: str) -> str:
        cache_files.append(cache_file_path(self, fingerprint))
        return cache_files[-1]

    monkeypatch.setattr(Dataset, "_get_cache_file_path", recorded)
    copy = train_dpo(base_checkpoint, ROWS, tmp_path / "copy", CFG, seed=0)
    precomputed_cfg = CFG.model_copy(update={"reference": "precomputed"})
    out = tmp_path / "precomputed"
    precomputed = train_dpo(base_checkpoint, ROWS, out, precomputed_cfg, seed=0)

    before, after = _weights(base_checkpoint), _weights(out)
    assert any(not torch.equal(before[name], after[name]) for name in before)
    assert precomputed.last_loss is not None and precomputed.metrics["n_steps"] == 2
    assert precomputed.metrics["reference"] == "log-probs precomputed from the base"
    assert precomputed.hyperparams["reference"] == "precomputed"
    assert copy.metrics["reference"] == "frozen copy of the base"
    # the same reference log-probs, whether precomputed or from the frozen copy
    assert precomputed.first_loss == pytest.approx(copy.first_loss, abs=1e-5)
    assert precomputed.last_loss == pytest.approx(copy.last_loss, abs=1e-5)
    # TRL's cache files (the reference log-probs among them) went into the scratch directory,
    # which is gone with the run
    scratch = tmp_path / ".scratch"
    assert cache_files and all(Path(f).is_relative_to(scratch) for f in cache_files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "precomputed"]
