"""The round-0 student: built locally, deterministic, reused, and in the 5-40% accuracy band."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from flywheel.config import Config
from flywheel.sandbox.student import (
    StudentRecipe,
    build_student,
    prose_words,
    sandbox_accuracy,
    student_tasks,
    tokenizer_corpus,
)
from tests.conftest import load_config_in

SMALL = StudentRecipe(
    n_train_tasks=120,
    n_heldout_tasks=21,
    n_tokenizer_tasks=120,
    hidden_size=64,
    n_layers=2,
    n_heads=2,
    intermediate_size=128,
    batch_size=8,
    max_steps=6,
)


def test_student_tasks_are_disjoint_from_each_other_and_the_pool_seed(smoke_config: Config) -> None:
    train, heldout = student_tasks(
        smoke_config, StudentRecipe(n_train_tasks=300, n_heldout_tasks=70)
    )
    assert len(train) == 300 and 60 <= len(heldout) <= 70
    assert not {t.prompt for t in train} & {t.prompt for t in heldout}


def test_tokenizer_keeps_prose_whole_and_spells_payloads(smoke_config: Config) -> None:
    train, _ = student_tasks(smoke_config, StudentRecipe(n_train_tasks=300, n_heldout_tasks=7))
    words = prose_words(tokenizer_corpus(train, seed=0), min_count=3)
    assert {"Reverse", "word", "Answer", "alphabetical"} <= words
    assert not {"banana", "ananab", "aaabnn"} & words


def test_small_build_saves_a_loadable_deterministic_checkpoint(tmp_path: Path) -> None:
    no_cache = {"cache": False}  # two real builds, not a build and its cached copy
    first = build_student(load_config_in(tmp_path / "a", student=no_cache), recipe=SMALL)
    second = build_student(load_config_in(tmp_path / "b", student=no_cache), recipe=SMALL)

    assert first.built and first.path == tmp_path / "a" / "student"
    assert 0.0 <= first.heldout_accuracy <= 1.0 and first.n_parameters > 0
    model = AutoModelForCausalLM.from_pretrained(first.path)
    tokenizer = AutoTokenizer.from_pretrained(first.path)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.tokenize("Answer: fig") == ["Answer", ":", "Ġ", "f", "i", "g"]

    a, b = (
        load_file(str(first.path / "model.safetensors")),
        load_file(str(second.path / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert first.heldout_accuracy == second.heldout_accuracy


def test_existing_student_is_reused_unless_forced(tmp_path: Path) -> None:
    config = load_config_in(tmp_path)
    built = build_student(config, recipe=SMALL)
    weights = (built.path / "model.safetensors").stat().st_mtime_ns

    reused = build_student(config, recipe=SMALL)
    assert not reused.built
    assert (reused.path / "model.safetensors").stat().st_mtime_ns == weights
    assert reused.heldout_accuracy == built.heldout_accuracy

    rebuilt = build_student(config, force=True, recipe=SMALL)
    assert rebuilt.built and (rebuilt.path / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_path_without_a_checkpoint_is_refused(tmp_path: Path) -> None:
    config = load_config_in(tmp_path)
    Path(config.student.path).mkdir()
    with pytest.raises(FileExistsError, match="holds no checkpoint"):
        build_student(config, recipe=SMALL)


def test_sandbox_accuracy_needs_tasks(tmp_path: Path) -> None:
    config = load_config_in(tmp_path)
    with pytest.raises(ValueError, match="at least one task"):
        sandbox_accuracy(tmp_path, [], config)


@pytest.mark.slow
def test_demo_student_lands_in_the_accuracy_band(tmp_path: Path) -> None:
    """The real recipe: mostly slips (5-40% held-out); about twelve minutes on two cores (slow)."""
    report = build_student(load_config_in(tmp_path, "demo"))
    assert 0.05 <= report.heldout_accuracy <= 0.40, report
    assert 1_000_000 <= report.n_parameters <= 5_000_000
