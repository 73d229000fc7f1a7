"""Preflight: what only this machine can tell, refused before anything runs."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest
import yaml

from flywheel.config import Config, ConfigError, parse_config
from flywheel.preflight import CHECKPOINT_FILES, check_before_run
from tests.conftest import REPO_ROOT, load_config_in

UNSET = "FLYWHEEL_TEST_UNSET_KEY"


@pytest.fixture(autouse=True)
def no_test_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)


def refusal_of(config: Config) -> str:
    with pytest.raises(ConfigError) as refused:
        check_before_run(config)
    return str(refused.value)


def smoke_data(tmp_path: Path) -> dict:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"]["path"] = str(tmp_path / "flywheel.duckdb")
    data["student"]["path"] = str(tmp_path / "student")
    data["training"]["output_dir"] = str(tmp_path / "models")
    return data


def test_smoke_config_passes_and_creates_the_output_folder(tmp_path: Path) -> None:
    config = load_config_in(tmp_path)
    check_before_run(config)
    assert Path(config.training.output_dir).is_dir()
    assert list(Path(config.training.output_dir).iterdir()) == [], "the probe file is removed"
    assert not Path(config.warehouse.path).exists(), "the warehouse is not opened"


def test_unset_judge_key_names_the_variable_the_endpoint_and_the_field(tmp_path: Path) -> None:
    message = refusal_of(load_config_in(tmp_path, judge={"api_key_env": UNSET}))
    assert "judge.api_key_env: endpoint 'judge' reads its API key from the environment " in message
    assert f"variable {UNSET}, which is not set. Fix: export {UNSET}=<your key>" in message


def test_empty_key_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UNSET, "")
    assert UNSET in refusal_of(load_config_in(tmp_path, judge={"api_key_env": UNSET}))


def test_a_set_key_passes_and_no_value_is_ever_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_TEST_SET_KEY", "sk-planted-secret")
    data = smoke_data(tmp_path)
    data["judge"]["api_key_env"] = "FLYWHEEL_TEST_SET_KEY"
    check_before_run(parse_config(data))
    data["references"][0]["api_key_env"] = UNSET
    message = refusal_of(parse_config(data))
    assert "references.0.api_key_env" in message and "FLYWHEEL_TEST_SET_KEY" not in message
    assert "sk-planted-secret" not in message


def test_every_endpoint_in_use_is_checked(tmp_path: Path) -> None:
    data = smoke_data(tmp_path)
    data["references"][1]["api_key_env"] = UNSET
    data["student"]["endpoint"] = {
        "name": "served",
        "base_url": "http://127.0.0.1:8000/v1",
        "model": "{version}",
        "api_key_env": "FLYWHEEL_TEST_UNSET_STUDENT_KEY",
    }
    message = refusal_of(parse_config(data))
    assert "references.1.api_key_env: endpoint 'mixed'" in message
    assert "student.endpoint.api_key_env: endpoint 'served'" in message
    assert "FLYWHEEL_TEST_UNSET_STUDENT_KEY" in message


def test_missing_student_that_may_not_be_built_is_refused(tmp_path: Path) -> None:
    config = load_config_in(tmp_path, student={"build_if_missing": False})
    message = refusal_of(config)
    assert f"student.path = {str(tmp_path / 'student')!r} holds no checkpoint" in message
    assert "Fix: point student.path at a Hugging Face checkpoint directory" in message


def test_missing_student_that_may_be_built_passes(tmp_path: Path) -> None:
    check_before_run(load_config_in(tmp_path, student={"build_if_missing": True}))


def student_with_template(student: Path, chat_template: str | None) -> None:
    """A checkpoint folder whose tokenizer is real (the sandbox's) and weights are stubs."""
    from flywheel.sandbox.tiny_model import build_tokenizer

    tokenizer = build_tokenizer(["What is 3 plus 4? Answer: 7"], vocab_size=300)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(student)
    for name in CHECKPOINT_FILES:
        (student / name).write_text("{}")


def test_existing_student_passes_without_build(tmp_path: Path) -> None:
    from flywheel.sandbox.tiny_model import CHAT_TEMPLATE

    student_with_template(tmp_path / "student", CHAT_TEMPLATE)
    check_before_run(load_config_in(tmp_path, student={"build_if_missing": False}))


# The newest message first: the prompt rendered for generation is not the start of the
# conversation with its answer, so no loss mask can keep to the answer.
REVERSED_TEMPLATE = (
    "{% for m in messages | reverse %}{{ '<|' + m['role'] + '|>' + m['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_a_student_whose_template_cannot_train_is_refused_naming_why_and_the_fix(
    tmp_path: Path,
) -> None:
    student = tmp_path / "student"
    student_with_template(student, REVERSED_TEMPLATE)
    message = refusal_of(load_config_in(tmp_path, student={"build_if_missing": False}))
    assert f"student.path = {str(student)!r}: its chat template is not prefix-preserving" in message
    assert "Fix: use a chat-tuned checkpoint whose template renders each turn the same" in message


def test_a_student_without_a_chat_template_is_refused(tmp_path: Path) -> None:
    student_with_template(tmp_path / "student", None)
    message = refusal_of(load_config_in(tmp_path, student={"build_if_missing": False}))
    assert "its tokenizer has no chat template" in message and "Fix:" in message


def test_a_student_whose_tokenizer_cannot_load_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "student").mkdir()
    for name in CHECKPOINT_FILES:
        (tmp_path / "student" / name).write_text("{}")
    message = refusal_of(load_config_in(tmp_path, student={"build_if_missing": False}))
    assert "its tokenizer cannot be loaded" in message
    assert len(message.splitlines()) == 2


def test_a_missing_gguf_student_is_refused(tmp_path: Path) -> None:
    gguf = tmp_path / "SmolLM2.Q4_1.gguf"
    message = refusal_of(load_config_in(tmp_path, student={"path": str(gguf)}))
    assert f"student.path = {str(gguf)!r} names a GGUF file that does not exist" in message


def test_a_student_folder_without_weights_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / "config.json").write_text("{}")
    message = refusal_of(load_config_in(tmp_path, student={"build_if_missing": False}))
    assert "holds no checkpoint (no model.safetensors)" in message


def test_checkpoint_files_are_the_ones_the_models_module_loads() -> None:
    from flywheel.llm.checkpoints import CHECKPOINT_FILES as LOADED_FILES

    assert CHECKPOINT_FILES == LOADED_FILES


@pytest.mark.parametrize("below", ["", "models"])
def test_output_dir_that_is_or_lies_under_a_regular_file_is_refused(
    tmp_path: Path, below: str
) -> None:
    regular_file = tmp_path / "notes.txt"
    regular_file.write_text("a file")
    output_dir = regular_file / below if below else regular_file
    config = load_config_in(tmp_path, training={"output_dir": str(output_dir)})
    message = refusal_of(config)
    assert (
        f"training.output_dir: folder {str(output_dir)!r} cannot be created or written" in message
    )
    assert "is a regular file). Fix: point training.output_dir at a writable folder." in message


def test_output_dir_on_a_read_only_filesystem_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root writes through permission bits, so the read-only filesystem is simulated at the
    one call that writes: the probe file."""
    config = load_config_in(tmp_path)
    real_temporary_file = tempfile.TemporaryFile

    def read_only_under_models(*args: object, dir: str | Path, **kwargs: object):
        if Path(dir) == Path(config.training.output_dir):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_temporary_file(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only_under_models)
    message = refusal_of(config)
    assert "training.output_dir: folder" in message and "(Read-only file system)" in message
    assert "warehouse.path" not in message


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_bad_warehouse_path_is_refused_naming_the_field(tmp_path: Path, where: str) -> None:
    (tmp_path / "notes.txt").write_text("a file")
    bad = tmp_path if where == "folder" else tmp_path / "notes.txt" / "flywheel.duckdb"
    message = refusal_of(load_config_in(tmp_path, warehouse={"path": str(bad)}))
    assert f"warehouse.path = {str(bad)!r} " in message and "Fix:" in message


def test_every_problem_is_listed_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("a file")
    data = smoke_data(tmp_path)
    data["judge"]["api_key_env"] = UNSET
    data["references"][0]["api_key_env"] = UNSET
    data["student"]["build_if_missing"] = False
    data["training"]["output_dir"] = str(tmp_path / "notes.txt" / "models")
    data["warehouse"]["path"] = str(tmp_path)
    lines = refusal_of(parse_config(data)).splitlines()
    assert lines[0] == "cannot run this configuration on this machine:"
    fields = [line.split()[0] for line in lines[1:]]
    assert fields == [
        "references.0.api_key_env:",
        "judge.api_key_env:",
        "student.path",
        "training.output_dir:",
        "warehouse.path",
    ]


def test_an_accelerate_launcher_that_cannot_run_here_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    training = {"launcher": "accelerate", "num_processes": 4096}
    training["accelerate_config_file"] = str(tmp_path / "missing.yaml")
    config = load_config_in(tmp_path, training=training)
    with pytest.raises(ConfigError) as refused:
        check_before_run(config)
    message = str(refused.value)
    assert "training.num_processes = 4096" in message and "at most" in message
    assert "missing.yaml' does not exist" in message
