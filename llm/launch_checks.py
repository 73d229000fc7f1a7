"""What `training.launcher: accelerate` needs, checked before a round starts (and before a stage).

The accelerate command must be installed, the processes must fit the devices (on a GPU machine one
process per GPU; on CPU each process is a gloo rank on its own core), and an accelerate config
file (DeepSpeed ZeRO or FSDP settings included) must parse. torch is imported only when the
launcher is accelerate.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from flywheel.config import TrainingConfig

LAUNCHER_COMMAND = "accelerate"


def launcher_executable() -> str | None:
    """`accelerate` next to this interpreter (its virtualenv) or on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(LAUNCHER_COMMAND, path=search)


def launcher_problems(training: TrainingConfig) -> list[str]:
    """One line per problem with running the stages through `accelerate launch`."""
    if training.launcher != "accelerate":
        return []
    problems = []
    if launcher_executable() is None:
        problems.append(
            "training.launcher = 'accelerate': the `accelerate` command is not installed. Fix: "
            "pip install accelerate in the environment that runs flywheel, or set "
            "training.launcher: in_process."
        )
    problems.append(_device_problem(training.num_processes))
    if training.accelerate_config_file is not None:
        config_file = Path(training.accelerate_config_file)
        problems.append(accelerate_config_problem(config_file, lora=training.lora.enabled))
    return [p for p in problems if p is not None]


def _device_problem(num_processes: int) -> str | None:
    import torch

    if torch.cuda.is_available():
        devices, noun, suffix = torch.cuda.device_count(), "GPU", ""
    else:
        devices, noun, suffix = os.cpu_count() or 1, "CPU core", " (gloo ranks, no GPU)"
    if num_processes <= devices:
        return None
    plural = "s" if devices != 1 else ""
    return (
        f"training.num_processes = {num_processes}: this machine has {devices} {noun}{plural}"
        f"{suffix}, one process each. Fix: set training.num_processes to at most {devices}."
    )


def _parse_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def shards_parameters(data: dict[str, Any]) -> bool:
    """FSDP, or DeepSpeed ZeRO stage 3: no process holds the whole model."""
    kind = str(data.get("distributed_type", "")).upper()
    deepspeed = data.get("deepspeed_config") or {}
    stage = deepspeed.get("zero_stage") if isinstance(deepspeed, dict) else None
    return kind == "FSDP" or (kind == "DEEPSPEED" and str(stage) == "3")


def accelerate_config_problem(path: Path, lora: bool = False) -> str | None:
    """The accelerate config file (and a DeepSpeed JSON it names) exists and parses as a mapping;
    a DeepSpeed config needs the deepspeed package; LoRA is not merged from sharded weights."""
    field = "training.accelerate_config_file"
    if not path.is_file():
        return f"{field} = {str(path)!r} does not exist. Fix: write it with `accelerate config`."
    try:
        data = _parse_file(path)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"{field} = {str(path)!r} does not parse: {str(e).splitlines()[0]}. Fix: correct it."
    if not isinstance(data, dict):
        return f"{field} = {str(path)!r} is not a mapping of accelerate settings. Fix: correct it."
    deepspeed = data.get("deepspeed_config") or {}
    nested = deepspeed.get("deepspeed_config_file") if isinstance(deepspeed, dict) else None
    if nested:
        nested_path = Path(nested)
        try:
            json.loads(nested_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            return (
                f"{field}: its deepspeed_config_file {nested!r} cannot be read as JSON "
                f"({str(e).splitlines()[0]}). Fix: correct the path or the file."
            )
    if lora and shards_parameters(data):
        return (
            f"{field} = {str(path)!r} shards the model (FSDP or ZeRO-3), and a LoRA candidate "
            "is merged into full weights in one process. Fix: use ZeRO-2 or plain multi-GPU "
            "with training.lora, or set training.lora.enabled: false."
        )
    uses_deepspeed = str(data.get("distributed_type", "")).upper() == "DEEPSPEED"
    if uses_deepspeed and importlib.util.find_spec("deepspeed") is None:
        return (
            f"{field} = {str(path)!r} uses DeepSpeed, which is not installed. Fix: pip install "
            "deepspeed, or use an FSDP or multi-GPU accelerate config."
        )
    return None
