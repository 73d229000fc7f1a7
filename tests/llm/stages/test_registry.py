"""The stage registry is the one list of stages and data kinds: the config, the train step,
mining, export, retention and the CLI accept exactly its names."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

import pytest

from flywheel.config import Config, ScheduleConfig
from flywheel.flows.cli import build_parser
from flywheel.llm.stages.registry import (
    DATA_KIND_NAMES,
    MADE_BEFORE_TRAINING,
    STAGE_NAMES,
    STAGES,
    config_sections,
    data_kind,
    kinds_mined,
    section_owners,
    stage_named,
)
from flywheel.tasks.mine import mining_rules
from flywheel.warehouse.export import export_rows
from flywheel.warehouse.store import connect_warehouse


def test_the_stages_and_kinds_are_the_ones_the_schedule_and_warehouse_know() -> None:
    assert STAGE_NAMES == ("sft", "dpo", "rm+rl", "kto", "orpo", "online-dpo")
    assert DATA_KIND_NAMES == ("sft", "dpo", "rm", "kto", "online-dpo")
    assert list(config_sections()) == ["sft", "dpo", "rm", "rl", "kto", "orpo", "online_dpo"]
    assert [stage.main_section for stage in STAGES] == [
        "sft", "dpo", "rm", "kto", "orpo", "online_dpo"
    ]  # fmt: skip


def test_the_config_accepts_exactly_the_registry_stages() -> None:
    (allowed,) = typing.get_args(ScheduleConfig.model_fields["stages"].annotation)
    assert typing.get_args(allowed) == STAGE_NAMES
    assert ScheduleConfig(stages=list(STAGE_NAMES)).stages == list(STAGE_NAMES)
    training_fields = set(Config.model_fields["training"].annotation.model_fields)
    assert set(config_sections()) <= training_fields


def test_the_cli_exports_exactly_the_registry_kinds() -> None:
    parser = build_parser()
    export = next(
        action.choices["export"]
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    (kind,) = [a for a in export._actions if "--kind" in a.option_strings]
    assert tuple(kind.choices) == DATA_KIND_NAMES


def test_mining_and_export_take_every_registry_stage_and_kind(smoke_config: Config) -> None:
    for name in STAGE_NAMES:
        rules = mining_rules(smoke_config, 1, name)
        assert [rule.data for rule in rules] == kinds_mined(stage_named(name))
        own = stage_named(name).data
        assert (own in [rule.data for rule in rules]) == (own not in MADE_BEFORE_TRAINING)
    assert [r.kind for r in mining_rules(smoke_config, 1, "dpo")] == ["sft", "dpo"]
    assert [r.kind for r in mining_rules(smoke_config, 1, "rm+rl")] == ["sft", "dpo", "rm"]
    assert [r.kind for r in mining_rules(smoke_config, 1, "kto")] == ["sft", "dpo", "kto"]
    assert [r.kind for r in mining_rules(smoke_config, 1, "orpo")] == ["sft", "dpo"]
    # online-dpo's pairs come from the champion's samples, made by the train step
    assert [r.kind for r in mining_rules(smoke_config, 1, "online-dpo")] == ["sft", "dpo"]
    with connect_warehouse(smoke_config.warehouse) as con:
        for kind in DATA_KIND_NAMES:
            assert export_rows(con, data_kind(kind).view, data_kind(kind).columns) == []


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="sft, dpo, rm\\+rl, kto, orpo, online-dpo"):
        stage_named("ppo")
    with pytest.raises(KeyError, match="sft, dpo, rm, kto, online-dpo"):
        data_kind("ppo")


def test_each_field_is_owned_by_the_sections_that_read_it() -> None:
    assert section_owners("beta") == ["dpo", "rl", "kto", "orpo", "online_dpo"]
    assert section_owners("balance_labels") == ["kto"]
    assert section_owners("chosen_nll_weight") == ["dpo", "online_dpo"]
    assert section_owners("n_samples") == ["online_dpo"]
    assert section_owners("verifiable_reward_weight") == ["rl", "online_dpo"]
    assert section_owners("num_generations") == ["rl"]
    assert section_owners("ensemble_size") == ["rm"]
    assert section_owners("learning_rate") == [
        "sft", "dpo", "rm", "rl", "kto", "orpo", "online_dpo"
    ]  # fmt: skip


def test_only_rm_rl_writes_beside_its_candidate(tmp_path: Path) -> None:
    out = tmp_path / "r3-rm-rl"
    assert stage_named("rm+rl").side_outputs(out) == [tmp_path / "r3-rm-rl-rm"]
    assert stage_named("sft").side_outputs(out) == stage_named("dpo").side_outputs(out) == []


def test_the_registry_and_config_import_no_training_library() -> None:
    import subprocess

    code = (
        "import sys, flywheel.config, flywheel.llm.stages.registry; "
        "print([m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
