"""benchmarks/gpu_check.py --smoke runs on CPU and writes every figure the GPU run reports, so
the GPU script cannot rot while no GPU is lent (timings are not checked, only their presence)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"
PARTS = ("sft-full", "sft-lora", "dpo-full", "dpo-lora")


def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "gpu-smoke.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--dtype", "bf16", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    printed = json.loads(run.stdout.strip().splitlines()[-1])
    report = json.loads(out.read_text())
    assert printed == report

    assert report["smoke"] is True and report["device"] == "cpu"
    assert report["base"]["dtype"] == "bfloat16" and report["base"]["bytes"] > 0
    assert report["model"]["n_parameters"] > 0
    assert sorted(report["training"]) == sorted(PARTS)
    for name in PARTS:
        part = report["training"][name]
        stage, plain = part["stage"], part["plain"]
        assert stage["n_steps"] == plain["n_steps"] >= 1, name
        assert stage["tokens_per_s"] > 0 and plain["tokens_per_s"] > 0, name
        assert part["ratio"] > 0 and isinstance(part["meets_goal"], bool), name
        assert stage["first_loss"] is not None and plain["first_loss"] is not None, name
        # a bf16 base trains on fp32 master weights on CPU and is saved back in bf16, same size
        assert stage["candidate_dtype"] == "bfloat16", name
        assert stage["candidate_bytes"] == report["base"]["bytes"], name
    lora, full = report["training"]["sft-lora"]["stage"], report["training"]["sft-full"]["stage"]
    assert lora["n_trainable_parameters"] < full["n_trainable_parameters"]
    assert report["candidates_match_base"] is True
    for batch in ("1", "16", "64"):
        figures = report["generation"][batch]
        assert figures["n_calls"] >= 1 and figures["tokens_per_s"] > 0, batch
