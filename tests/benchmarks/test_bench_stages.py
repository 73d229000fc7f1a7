"""benchmarks/bench_stages.py's set-up: the bench's config copy (a real GGUF student, the prompt
sizes), the steps each arm trains, and the summary when an arm could not train."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_stages import bench_config, capped_steps, summarise  # noqa: E402


def written_config(source: str, workdir: Path, **sizes: int | None) -> dict:
    path = bench_config(REPO_ROOT / "configs" / source, workdir, 1, 4, sizes)
    return yaml.safe_load(path.read_text())


def test_a_gguf_student_keeps_its_file_name_so_the_run_fetches_and_converts_it(
    tmp_path: Path,
) -> None:
    config = written_config("real-small.yaml", tmp_path)
    assert config["student"]["path"] == str(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert config["training"]["output_dir"] == str(tmp_path / "models")


def test_a_sandbox_student_goes_to_the_bench_folder(tmp_path: Path) -> None:
    config = written_config("demo.yaml", tmp_path)
    assert config["student"]["path"] == str(tmp_path / "student")


def test_only_the_prompt_sizes_given_are_overridden(tmp_path: Path) -> None:
    config = written_config("real-small.yaml", tmp_path, eval_size=100, slice_size=None)
    assert config["prompts"]["eval_size"] == 100
    assert config["prompts"]["slice_size"] == 128  # real-small.yaml's own


def test_kto_orpo_and_online_dpo_take_dpos_settings_without_its_reference(tmp_path: Path) -> None:
    training = written_config("real-small.yaml", tmp_path)["training"]
    for section in ("kto", "orpo", "online_dpo"):
        assert training[section]["learning_rate"] == training["dpo"]["learning_rate"]
        assert "reference" not in training[section]
        assert "chosen_nll_weight" not in training[section]
    assert training["online_dpo"]["n_samples"] == 4


def test_the_cap_keeps_a_sections_smaller_own_steps() -> None:
    assert capped_steps(own_steps=15, cap=20) == 15
    assert capped_steps(own_steps=30, cap=20) == 20
    assert capped_steps(own_steps=-1, cap=20) == 20  # by epochs: the cap stops it


def test_no_cap_trains_each_section_as_a_real_round_does() -> None:
    assert capped_steps(own_steps=15, cap=0) == 15
    assert capped_steps(own_steps=-1, cap=0) == -1


def run(accuracy: float, wall_s: float) -> dict:
    return {
        "n_rows": 10,
        "heldout_accuracy": accuracy,
        "win_rate_vs_champion": 0.5,
        "wall_s": wall_s,
        "peak_memory_mb": 100.0,
    }


def test_ratios_are_to_dpos_mean_over_seeds() -> None:
    summary = summarise({"dpo": [run(0.2, 10), run(0.4, 30)], "kto": [run(0.15, 40)]})
    assert summary["kto"]["heldout_accuracy_vs_dpo"] == pytest.approx(0.5)
    assert summary["kto"]["wall_s_vs_dpo"] == pytest.approx(2.0)
    assert summary["dpo"]["heldout_accuracy_vs_dpo"] == 1.0


def test_without_dpo_the_other_arms_keep_their_figures_and_have_no_ratio() -> None:
    summary = summarise({"kto": [run(0.15, 40)]})
    assert summary["kto"]["heldout_accuracy"] == 0.15
    assert summary["kto"]["heldout_accuracy_vs_dpo"] is None
