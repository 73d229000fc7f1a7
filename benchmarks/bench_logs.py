"""Benchmark of the logs ingest (`flywheel logs add`) beside the pool's prompt ingest.

    python benchmarks/bench_logs.py                         # 1,000,000 conversations
    python benchmarks/bench_logs.py --n-conversations 100000
    python benchmarks/bench_logs.py --workdir DIR --reuse   # the logs DIR holds, if the same

1. generate  (a child process, not timed) N logged conversations spread over the five log
             formats (OpenAI chat-completion logs, LangSmith runs, Langfuse traces, Chatbot
             Arena records counting as two conversations, messages with per-turn feedback):
             1-3 questions of 20-60 words from a Zipf-like 30k-word vocabulary, answers of
             10-40 words, a thumb on 30% of answers, an e-mail or phone number in 1% of
             questions, a user id on each; and, for the peer, the same conversations' opening
             prompts as a JSONL prompt file.
2. peer      `add_prompt_file` of the opening prompts into an empty warehouse (the pool's
             ingest: dedup, decontamination), in a fresh child process.
3. logs      `add_log_files` of the log files into another empty warehouse (parse, redact, hash,
             write conversations, turns and feedback, then the same prompts through the pool's
             ingest), in a fresh child process.
4. again     `add_log_files` of the same files once more (nothing new: one hash pass each).

Both arms run in the same invocation on at most `--cores` cores; each reports its wall time,
CPU time (with its worker processes': the logs arm builds a large file's batches in one) and
peak RSS (its own max RSS plus its largest child process's, a bound on the worker that runs
beside it), and the
logs arm is given as ratios against the peer.
Prints the figures, then one JSON line. Targets (issue 32): 1M conversations in under 300 s
and 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flywheel.config import Config, parse_config  # noqa: E402

VOCAB_SIZE = 30_000
FORMATS = ("openai-log", "langsmith", "langfuse", "arena", "messages")
TARGET_WALL_S = 300.0
TARGET_PEAK_GIB = 4.0
SALT_ENV = "FLYWHEEL_USER_SALT"
GENERATED_MARK = "generated.json"  # what `generate` wrote in a workdir: its arguments


class TextMaker:
    """Synthetic texts from a Zipf-like vocabulary, drawn with one generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        lengths = self.rng.integers(3, 11, VOCAB_SIZE)
        self.vocab = np.array(["".join(self.rng.choice(letters, n)) for n in lengths])
        weights = 1.0 / np.arange(1, VOCAB_SIZE + 1)
        self.cdf = np.cumsum(weights / weights.sum())

    def text(self, low: int, high: int) -> str:
        draws = self.rng.random(int(self.rng.integers(low, high)))
        words = self.vocab[np.minimum(np.searchsorted(self.cdf, draws), VOCAB_SIZE - 1)]
        return " ".join(words)


def conversation(maker: TextMaker, index: int) -> tuple[list[dict], list[str | None]]:
    """Turns (1-3 questions and their answers) and a thumb (or None) per answer."""
    rng = maker.rng
    turns, thumbs = [], []
    for _ in range(int(rng.integers(1, 4))):
        question = maker.text(20, 60)
        if rng.random() < 0.01:
            question += f" write to user{index}@example.com or call +1 415-555-{index % 10000:04d}"
        turns += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": maker.text(10, 40)},
        ]
        thumbs.append(("up" if rng.random() < 0.6 else "down") if rng.random() < 0.3 else None)
    return turns, thumbs


def record(log_format: str, index: int, turns: list[dict], thumbs: list, user: str) -> dict:
    """One log record of `log_format` holding the conversation (its last answer's thumb)."""
    key, last = f"c{index}", thumbs[-1]
    if log_format == "openai-log":
        meta = {"user_id": user, **({"feedback": {"thumb": last}} if last else {})}
        return {
            "request": {"messages": turns[:-1]},
            "response": {"id": key, "model": "r1", "choices": [{"message": turns[-1]}]},
            "metadata": meta,
        }
    if log_format == "langsmith":
        feedback = [{"key": "thumb", "score": int(last == "up")}] if last else []
        return {
            "id": key,
            "inputs": {"messages": turns[:-1]},
            "outputs": {"output": turns[-1]["content"]},
            "extra": {"metadata": {"user_id": user}},
            "feedback": feedback,
        }
    if log_format == "langfuse":
        scores = [{"name": "thumbs", "value": int(last == "up"), "dataType": "BOOLEAN"}]
        return {
            "id": key,
            "userId": user,
            "input": turns[:-1],
            "output": turns[-1],
            "scores": scores if last else [],
        }
    if log_format == "arena":
        other = [*turns[:-1], {"role": "assistant", "content": turns[-1]["content"][::-1]}]
        return {
            "question_id": key,
            "model_a": "r1",
            "model_b": "ref",
            "winner": "model_a" if last != "down" else "model_b",
            "judge": user,
            "conversation_a": turns,
            "conversation_b": other,
        }
    marked = [
        {**t, "feedback": thumbs[i // 2]} if t["role"] == "assistant" and thumbs[i // 2] else t
        for i, t in enumerate(turns)
    ]
    return {"id": key, "user_id": user, "messages": marked}


def generate(workdir: Path, n_conversations: int, seed: int) -> None:
    """Write one log file per format and prompts.jsonl (the opening prompts) under workdir."""
    maker = TextMaker(seed)
    outs = {f: (workdir / f"logs.{f}.jsonl").open("w") for f in FORMATS}
    prompts = (workdir / "prompts.jsonl").open("w")
    index = made = 0
    while made < n_conversations:
        log_format = FORMATS[index % len(FORMATS)]
        turns, thumbs = conversation(maker, index)
        user = f"user-{int(maker.rng.integers(0, n_conversations // 10 + 1))}"
        outs[log_format].write(json.dumps(record(log_format, index, turns, thumbs, user)) + "\n")
        prompts.write(json.dumps({"messages": turns[:1]}) + "\n")
        made += 2 if log_format == "arena" else 1
        index += 1
    for handle in [*outs.values(), prompts]:
        handle.close()
    (workdir / GENERATED_MARK).write_text(json.dumps(generated_as(n_conversations, seed)))


def generated_as(n_conversations: int, seed: int) -> dict[str, int]:
    return {"n_conversations": n_conversations, "seed": seed}


def already_generated(workdir: Path, n_conversations: int, seed: int) -> bool:
    """Whether `workdir` holds the logs `generate` writes for these arguments (its mark)."""
    mark = workdir / GENERATED_MARK
    return mark.is_file() and json.loads(mark.read_text()) == generated_as(n_conversations, seed)


def clear_warehouses(workdir: Path) -> None:
    """Remove the arms' warehouses (and what they wrote beside them) from an earlier run."""
    for stale in [*workdir.glob("*.duckdb*"), workdir / "student", workdir / "models"]:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def bench_config(workdir: Path, name: str) -> Config:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"]["path"] = str(workdir / f"{name}.duckdb")
    data["student"]["path"] = str(workdir / "student")
    data["training"]["output_dir"] = str(workdir / "models")
    data["prompts"]["batch_size"] = 20_000
    return parse_config(data, "configs/smoke.yaml (benchmark copy)")


def peak_rss_gib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 2**20  # ru_maxrss is in KiB


def cpu_s() -> float:
    """CPU time of this process and of its ended children (the logs arm's worker processes,
    which build a large file's batches beside it)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def run_arm(workdir: Path, arm: str) -> dict:
    """One arm in this (child) process: its wall time, CPU time, peak RSS and counts."""
    from flywheel.pool.ingest import add_prompt_file
    from flywheel.pool.logs_ingest import add_log_files

    logs = sorted(workdir.glob("logs.*.jsonl"))
    config = bench_config(workdir, "peer" if arm == "peer" else "logs")
    started, cpu = time.perf_counter(), cpu_s()
    if arm == "peer":
        report = add_prompt_file(config, workdir / "prompts.jsonl")
        counts = {"n_records": report.n_records, "n_added": report.n_added}
    else:
        report = add_log_files(config, logs)
        counts = {
            "n_records": report.n_records,
            "n_conversations": report.n_conversations,
            "n_feedback": report.n_feedback,
            "n_redacted": sum(report.redactions.values()),
            "n_malformed": report.n_malformed,
            "n_files_unchanged": report.n_files_unchanged,
        }
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(cpu_s() - cpu, 1),
        # the arm's process, and beside it at most one worker process at a time: the peak of
        # the largest child (the worker, or a short helper process: an upper bound) is added
        "peak_rss_gib": round(peak_rss_gib() + peak_rss_gib(resource.RUSAGE_CHILDREN), 2),
        "worker_peak_rss_gib": round(peak_rss_gib(resource.RUSAGE_CHILDREN), 2),
        **counts,
    }


def child(workdir: Path, arm: str) -> dict:
    command = [sys.executable, __file__, "--arm", arm, "--workdir", str(workdir)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def limit_cores(n_cores: int) -> int:
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:n_cores])
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-conversations", type=int, default=1_000_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="kept afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="with --workdir: use the logs generated there before"
    )
    parser.add_argument("--arm", choices=["generate", "peer", "logs"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault(SALT_ENV, "bench-salt")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_logs_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.arm == "generate":
        generate(workdir, args.n_conversations, args.seed)
        return
    if args.arm is not None:
        print(json.dumps(run_arm(workdir, args.arm)))
        return

    n_cores = limit_cores(args.cores)  # inherited by the children
    started = time.perf_counter()
    clear_warehouses(workdir)
    if args.reuse and already_generated(workdir, args.n_conversations, args.seed):
        print(f"reusing the logs in {workdir}")
    else:
        command = [sys.executable, __file__, "--arm", "generate", "--workdir", str(workdir)]
        command += ["--n-conversations", str(args.n_conversations), "--seed", str(args.seed)]
        subprocess.run(command, check=True)
    size_mib = sum(p.stat().st_size for p in workdir.glob("logs.*.jsonl")) / 2**20
    print(
        f"{args.n_conversations:,} conversations ({size_mib:,.0f} MiB of logs) ready in "
        f"{time.perf_counter() - started:.0f} s"
    )
    load_at_start = round(os.getloadavg()[0], 1)
    peer, logs, again = child(workdir, "peer"), child(workdir, "logs"), child(workdir, "logs")
    figures = {
        "n_conversations": args.n_conversations,
        "cores": n_cores,
        "load_average_1min_start": load_at_start,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "logs": logs,
        "peer_prompt_ingest": peer,
        "logs_again_wall_s": again["wall_s"],
        "conversations_per_s": round(args.n_conversations / logs["wall_s"]),
        "wall_ratio_to_peer": round(logs["wall_s"] / peer["wall_s"], 2),
        "cpu_ratio_to_peer": round(logs["cpu_s"] / peer["cpu_s"], 2),
        "peak_rss_ratio_to_peer": round(logs["peak_rss_gib"] / peer["peak_rss_gib"], 2),
    }
    figures["meets_targets_at_1m"] = bool(
        args.n_conversations >= 1_000_000
        and logs["wall_s"] < TARGET_WALL_S
        and logs["peak_rss_gib"] < TARGET_PEAK_GIB
    )
    print(
        f"logs ingest: {args.n_conversations:,} conversations in {logs['wall_s']} s on {n_cores} "
        f"cores ({figures['conversations_per_s']:,}/s, CPU {logs['cpu_s']} s, load average "
        f"{load_at_start} at the start, {figures['load_average_1min']} at the end), peak RSS {logs['peak_rss_gib']} GiB; "
        f"{logs['n_feedback']:,} feedback, {logs['n_redacted']:,} redactions; "
        f"peer (pool ingest of the opening prompts): {peer['wall_s']} s, "
        f"{peer['peak_rss_gib']} GiB; ratios to the peer: wall {figures['wall_ratio_to_peer']}, "
        f"CPU {figures['cpu_ratio_to_peer']}, peak RSS {figures['peak_rss_ratio_to_peer']}; the "
        f"same files again: "
        f"{again['wall_s']} s ({again['n_files_unchanged']} files with nothing new)"
    )
    print(json.dumps(figures))
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
