"""What can only be checked on this machine, checked before anything runs.

`load_config` checks the file itself; `check_before_run` checks it against this machine: the
API keys the endpoints name are set, the round-0 student exists (with a chat template that can
train with the loss on its answers) or may be built, a served student's serving command is
installed, the training output folder and the warehouse's folder can be written, and an
online-dpo schedule can make its pairs (its reward model exists; the student can sample).
Every problem is listed, one line each, in one `ConfigError`; nothing
is started and nothing is stored before it passes. Key values are never read into a
message: only the variable's name is shown.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from flywheel.config import Config, ConfigError, EndpointConfig
from flywheel.llm.gguf import base_checkpoint_dir, is_fetchable_gguf
from flywheel.llm.launch_checks import launcher_problems
from flywheel.llm.stages.online_dpo import online_dpo_problems
from flywheel.warehouse.store import warehouse_path_problem

# What llm/checkpoints.py loads from a checkpoint (its CHECKPOINT_FILES; that module imports torch).
CHECKPOINT_FILES = ("config.json", "model.safetensors")


def endpoints_in_use(config: Config) -> list[tuple[str, EndpointConfig]]:
    """(config field, endpoint) of every endpoint a round calls: references, judge, student."""
    named = [(f"references.{i}", ref) for i, ref in enumerate(config.references)]
    named.append(("judge", config.judge))
    named += [(f"judge.panel.{i}", judge) for i, judge in enumerate(config.judge.panel)]
    if config.student.endpoint is not None:
        named.append(("student.endpoint", config.student.endpoint))
    if config.logs.classify and config.logs.classifier is not None:
        named.append(("logs.classifier", config.logs.classifier))
    return named


def missing_api_keys(config: Config) -> list[str]:
    """One line per endpoint whose `api_key_env` names an unset or empty variable."""
    problems = []
    for field, endpoint in endpoints_in_use(config):
        variable = endpoint.api_key_env
        if variable is not None and not os.environ.get(variable):
            problems.append(
                f"{field}.api_key_env: endpoint {endpoint.name!r} reads its API key from the "
                f"environment variable {variable}, which is not set. Fix: export "
                f"{variable}=<your key>, or set {field}.api_key_env: null for a keyless endpoint."
            )
    return problems


def student_problem(config: Config) -> str | None:
    """The round-0 student must be a checkpoint (or a GGUF file), or be allowed to be built;
    one that exists must have a chat template that can train (`template_problem`)."""
    student_path = Path(config.student.path)
    if student_path.suffix.lower() == ".gguf":
        if is_fetchable_gguf(student_path):  # fetched and converted by the run, first thing
            return None
        if not student_path.is_file():
            return (
                f"student.path = {str(student_path)!r} names a GGUF file that does not exist. "
                "Fix: point student.path at a .gguf file or a Hugging Face checkpoint directory."
            )
        converted = base_checkpoint_dir(student_path, config.training.output_dir)
        return student_template_problem(converted if converted.is_dir() else student_path)
    missing = [name for name in CHECKPOINT_FILES if not (student_path / name).is_file()]
    if not missing:
        return student_template_problem(student_path)
    if config.student.build_if_missing:
        return None
    return (
        f"student.path = {str(student_path)!r} holds no checkpoint (no {', '.join(missing)}) and "
        "student.build_if_missing is false. Fix: point student.path at a Hugging Face "
        "checkpoint directory, or set student.build_if_missing: true to build the sandbox's "
        "tiny student."
    )


def student_template_problem(student_path: Path) -> str | None:
    """Why the student's chat template cannot train with the loss on its answers, or None."""
    from transformers import AutoTokenizer

    from flywheel.llm.chat_template import template_problem

    try:
        if student_path.suffix.lower() == ".gguf":
            tokenizer = AutoTokenizer.from_pretrained(
                student_path.parent, gguf_file=student_path.name
            )
        else:
            tokenizer = AutoTokenizer.from_pretrained(student_path)
    except Exception as e:  # a broken or unsupported tokenizer: say which, not a traceback
        reason = " ".join(str(e).split())  # on one line, however transformers wrapped it
        return (
            f"student.path = {str(student_path)!r}: its tokenizer cannot be loaded "
            f"({type(e).__name__}: {reason[:300]}). Fix: point student.path at a checkpoint whose "
            "tokenizer files AutoTokenizer reads."
        )
    problem = template_problem(tokenizer)
    return None if problem is None else f"student.path = {str(student_path)!r}: {problem}"


def folder_problem(field: str, folder: Path) -> str | None:
    """Create `folder` if missing, then write and remove a probe file in it; None if both work.

    Root passes permission bits, so only a real write tells (a read-only filesystem, a path
    under a regular file)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".flywheel-probe-"):
            pass
    except OSError as e:
        reason = e.strerror or str(e)
        if isinstance(e, FileExistsError | NotADirectoryError):
            reason = "it, or a folder above it, is a regular file"
        return (
            f"{field}: folder {str(folder)!r} cannot be created or written ({reason}). Fix: "
            f"point {field} at a writable folder."
        )
    return None


def warehouse_problem(config: Config) -> str | None:
    """`warehouse.path` must be able to be a file, in a folder DuckDB can write (file and WAL)."""
    db_path = Path(config.warehouse.path)
    problem = warehouse_path_problem(db_path)
    if problem is not None:
        return problem
    return folder_problem("warehouse.path", db_path.parent)


def serve_command_problem(config: Config) -> str | None:
    """With student.backend server or vllm, the serving command must be installed here."""
    from flywheel.llm.serving import ServeError, require_command, serve_argv

    backend = config.student.answer_backend
    if backend not in ("server", "vllm"):
        return None
    argv = serve_argv(config.student.serve, backend, config.student.path, "v0", 1)
    try:
        require_command(argv, backend)
    except ServeError as e:
        return str(e)
    return None


def lake_problems(config: Config) -> list[str]:
    """A DuckLake warehouse: the SQLite catalog's folder and a local data folder can be
    written, the S3 credentials are set and the bucket takes a write, the catalog can be
    reached with these credentials and was not made by a newer flywheel."""
    from flywheel.warehouse.lake_attach import is_s3, sqlite_catalog_file
    from flywheel.warehouse.lake_checks import lake_problems

    warehouse = config.warehouse
    assert warehouse.catalog and warehouse.data_path
    folders: list[str | None] = []
    catalog_file = sqlite_catalog_file(warehouse.catalog)
    if catalog_file is not None:
        folders.append(folder_problem("warehouse.catalog", catalog_file.parent))
    if not is_s3(warehouse.data_path):
        folders.append(folder_problem("warehouse.data_path", Path(warehouse.data_path)))
    found = [p for p in folders if p is not None]
    return found or lake_problems(warehouse)


def warehouse_problems(config: Config) -> list[str | None]:
    if config.warehouse.backend == "ducklake":
        return list(lake_problems(config))
    return [warehouse_problem(config)]


def check_before_run(config: Config) -> None:
    """Raise ConfigError listing every problem with running `config` on this machine."""
    problems = [
        *missing_api_keys(config),
        student_problem(config),
        serve_command_problem(config),
        folder_problem("training.output_dir", Path(config.training.output_dir)),
        *warehouse_problems(config),
        *launcher_problems(config.training),
        *online_dpo_problems(config),
    ]
    found = [p for p in problems if p is not None]
    if found:
        lines = "\n".join(f"  {problem}" for problem in found)
        raise ConfigError(f"cannot run this configuration on this machine:\n{lines}")
