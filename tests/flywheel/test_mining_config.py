"""`training.mining`'s SFT rule settings are validated with the field and the fix named."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.config import ConfigError
from tests.conftest import load_config_in


def mining(tmp_path: Path, **updates: object):
    base = load_config_in(tmp_path, "smoke").model_dump()["training"]
    base["mining"] |= updates
    return load_config_in(tmp_path, "smoke", training=base)


def test_the_arena_rule_is_the_default(tmp_path: Path) -> None:
    rule = load_config_in(tmp_path, "smoke").training.mining
    assert (rule.sft_rule, rule.refine_with, rule.refine_prompt_version) == (
        "arena",
        None,
        "refine-v1",
    )


def test_refine_with_must_name_a_reference(tmp_path: Path) -> None:
    assert mining(tmp_path, sft_rule="refine", refine_with="mixed").training.mining.refine_with
    with pytest.raises(ConfigError) as error:
        mining(tmp_path, sft_rule="refine", refine_with="ref:strong")
    message = str(error.value)
    assert "training.mining.refine_with" in message and '"ref:strong"' in message
    assert "strong, mixed" in message


def test_unknown_sft_rules_and_prompt_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sft_rule"):
        mining(tmp_path, sft_rule="best-of-n")
    with pytest.raises(ConfigError, match="refine-v1"):
        mining(tmp_path, refine_prompt_version="refine-v9")
