"""Benchmark of the implicit-feedback classifier against the sandbox users' ground truth.

    python benchmarks/bench_feedback_classifier.py                      # 3 days x 300
    python benchmarks/bench_feedback_classifier.py --days 1 --conversations 100 --seed 1

1. traffic   `flywheel sandbox traffic` days 1..D (`--conversations` each): simulated users
             chat with a sandbox model and leave thumbs and feedback turns, written in the five
             log formats, the truth of every answer apart.
2. ingest    `add_log_files` of the days' logs into an empty warehouse.
3. classify  `classify_logged_feedback` through the real sandbox server over HTTP on
             127.0.0.1 (the judge's endpoint answers the classifier prompt by reading each
             user's turn: `sandbox/classifier_replies.py`), timed; then once more (a rerun:
             every call from the cache, nothing written). Before it, the plan's memory
             (tracemalloc peak): the pending keys and one batch's pairs with their turns, as
             the classifier holds them, against every pending pair's turns held at once.
4. score     every distinct (conversation, answer) with a next user turn: its truth is the
             category of the user's next turn (`next_category`, none when the turn is no
             feedback); its prediction the category of its implicit feedback row (none when the
             classifier stored none: no feedback found, unparsed, or the quote not found).
             Precision and recall per category; the share of feedback turns found (any
             category) and of those, the share with the right polarity.

A pair logged in several records (an OpenAI log repeats the history in every request) is
scored once; it was asked once (identical requests share a call).
Prints a table of ratios, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import yaml  # noqa: E402

from flywheel.config import Config, parse_config, resolve_sandbox_endpoints  # noqa: E402
from flywheel.evaluators.feedback_classifier import CATEGORIES, LABEL_OF  # noqa: E402
from flywheel.pool.logs_ingest import add_log_files  # noqa: E402
from flywheel.sandbox.server import start_sandbox  # noqa: E402
from flywheel.sandbox.traffic_day import write_traffic_day  # noqa: E402
from flywheel.sandbox.traffic_formats import TRUTH_FOLDER  # noqa: E402
from flywheel.tasks.classify_feedback import (  # noqa: E402
    PAIRS_PER_BATCH,
    classify_logged_feedback,
    pairs_with_turns,
    pending_keys,
)
from flywheel.warehouse.store import connect  # noqa: E402

CLASSES = (*CATEGORIES, "none")
_PER_ANSWER_ID = re.compile(r"-a[0-9]+$")  # openai-log, langsmith, langfuse: `<key>-a<k>`


def bench_config(workdir: Path, config_name: str, seed: int | None) -> Config:
    data = yaml.safe_load((REPO_ROOT / "configs" / f"{config_name}.yaml").read_text())
    data["warehouse"]["path"] = str(workdir / "flywheel.duckdb")
    if seed is not None:
        data.setdefault("sandbox", {})["seed"] = seed  # the users, the answers, the classifier
    data.setdefault("logs", {})["add_prompts"] = False  # the pool is not what is measured
    return parse_config(data, f"configs/{config_name}.yaml (benchmark copy)")


def truth_by_answer(out_dir: Path) -> dict[tuple[str, int], str]:
    """(conversation key, answer's turn index) -> the next user turn's category (none)."""
    truth: dict[tuple[str, int], str] = {}
    for path in sorted((out_dir / TRUTH_FOLDER).glob("day-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            truth[(row["conversation_key"], row["turn_index"])] = row["next_category"] or "none"
    return truth


def predictions(config: Config) -> dict[tuple[str, int], str]:
    """(conversation key, answer's turn index) -> the stored implicit category (none), for
    every answer with a next user turn."""
    query = """
        select c.external_id, a.turn_index, f.category
        from log_turns as a
        join log_turns as u
            on u.conversation_id = a.conversation_id and u.turn_index = a.turn_index + 1
        join log_conversations as c on c.conversation_id = a.conversation_id
        left join feedback as f
            on f.conversation_id = a.conversation_id and f.turn_index = a.turn_index
            and f.source = 'implicit'
        where a.role = 'assistant' and u.role = 'user'
    """
    with connect(config.warehouse.path, read_only=True) as con:
        rows = con.execute(query).fetchall()
    predicted: dict[tuple[str, int], str] = {}
    for external_id, turn_index, category in rows:
        key = (_PER_ANSWER_ID.sub("", external_id), turn_index)
        previous = predicted.setdefault(key, category or "none")
        if previous != (category or "none"):
            raise RuntimeError(f"one pair, two predictions: {key} {previous} {category}")
    return predicted


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def score(truth: dict[tuple[str, int], str], predicted: dict[tuple[str, int], str]) -> dict:
    """Precision and recall per class, feedback found, polarity right (module doc, step 4)."""
    missing = [k for k in predicted if k not in truth]
    if missing:
        raise RuntimeError(f"{len(missing)} pairs without a truth row, e.g. {missing[0]}")
    pairs = [(truth[k], p) for k, p in predicted.items()]
    hits = Counter(t for t, p in pairs if t == p)
    n_true, n_predicted = Counter(t for t, _ in pairs), Counter(p for _, p in pairs)
    per_class = {
        c: {
            "n_truth": n_true[c],
            "n_predicted": n_predicted[c],
            "precision": ratio(hits[c], n_predicted[c]),
            "recall": ratio(hits[c], n_true[c]),
        }
        for c in CLASSES
    }
    feedback = [(t, p) for t, p in pairs if t != "none"]
    found = [(t, p) for t, p in feedback if p != "none"]
    return {
        "n_pairs": len(pairs),
        "n_feedback_turns": len(feedback),
        "feedback_found": ratio(len(found), len(feedback)),
        "polarity_right": ratio(sum(LABEL_OF[t] == LABEL_OF[p] for t, p in found), len(found)),
        "accuracy": ratio(sum(hits.values()), len(pairs)),
        "per_class": per_class,
    }


def traced_peak_bytes(work: Callable[[], object]) -> int:
    """The peak of Python allocations while `work` runs and its result is held."""
    tracemalloc.start()
    try:
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


def plan_memory(config: Config) -> dict[str, Any]:
    """Peak memory of the classifier's plan (every pending key, then the first batch's pairs
    with their turns) against every pending pair's turns held at once, measured here."""
    version = config.logs.classifier_prompt_version

    def keys_and_one_batch() -> object:
        keys = pending_keys(config, version)
        return keys, pairs_with_turns(config, keys[:PAIRS_PER_BATCH])

    batched = traced_peak_bytes(keys_and_one_batch)
    every_pair = traced_peak_bytes(lambda: pairs_with_turns(config, pending_keys(config, version)))
    return {
        "n_pending_pairs": len(pending_keys(config, version)),
        "pairs_per_batch": PAIRS_PER_BATCH,
        "keys_and_one_batch_mib": round(batched / 2**20, 2),
        "every_pair_at_once_mib": round(every_pair / 2**20, 2),
        "ratio": round(batched / every_pair, 3) if every_pair else None,
    }


def run(
    days: int, n_conversations: int, config_name: str, seed: int | None, workdir: Path
) -> dict[str, Any]:
    os.environ.setdefault("FLYWHEEL_USER_SALT", "bench-salt")
    config = bench_config(workdir, config_name, seed)
    out_dir = workdir / "traffic"
    paths: list[Path] = []
    for day in range(1, days + 1):
        paths += write_traffic_day(config.sandbox, day, out_dir, n_conversations).paths
    ingest = add_log_files(config, paths)
    memory = plan_memory(config)
    with start_sandbox(config.sandbox) as server:
        resolved = resolve_sandbox_endpoints(config, server.base_url)
        first = classify_logged_feedback(resolved)
        again = classify_logged_feedback(resolved)
    figures = score(truth_by_answer(out_dir), predictions(config))
    return {
        "days": days,
        "conversations_per_day": n_conversations,
        "config": config_name,
        "seed": config.sandbox.seed,
        "classifier": f"{first.endpoint} ({first.classifier_version})",
        "n_conversations_stored": ingest.n_conversations,
        **figures,
        "classify": {
            "n_pairs_read": first.n_pairs,
            "n_calls_sent": first.n_sent,
            "n_labelled": first.n_labelled,
            "n_no_feedback": first.n_no_feedback,
            "n_unparsed": first.n_unparsed,
            "n_quote_not_found": first.n_quote_not_found,
            "n_failed": first.n_failed,
            "wall_s": round(first.wall_s, 2),
            "pairs_per_s": round(first.n_pairs / first.wall_s, 1) if first.wall_s else None,
        },
        "plan_memory": memory,
        "rerun": {
            "n_pairs_read": again.n_pairs,
            "n_calls_sent": again.n_sent,
            "n_labelled": again.n_labelled,
            "wall_s": round(again.wall_s, 2),
        },
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(figures: dict[str, Any]) -> None:
    print(
        f"classifier {figures['classifier']} on {figures['days']} sandbox day(s) (seed "
        f"{figures['seed']}) x "
        f"{figures['conversations_per_day']} conversations: {figures['n_pairs']} distinct "
        f"(answer, next user turn) pairs, {figures['n_feedback_turns']} of them feedback turns"
    )
    print(f"{'category':<14}{'truth':>7}{'predicted':>11}{'precision':>11}{'recall':>9}")
    for name, row in figures["per_class"].items():
        print(
            f"{name:<14}{row['n_truth']:>7}{row['n_predicted']:>11}"
            f"{_fmt(row['precision']):>11}{_fmt(row['recall']):>9}"
        )
    calls, rerun = figures["classify"], figures["rerun"]
    print(
        f"feedback turns found {_fmt(figures['feedback_found'])}, right polarity among them "
        f"{_fmt(figures['polarity_right'])}, accuracy over all pairs {_fmt(figures['accuracy'])}"
    )
    print(
        f"classify: {calls['n_pairs_read']} pairs read, {calls['n_calls_sent']} calls, "
        f"{calls['n_labelled']} labelled, {calls['n_no_feedback']} no feedback, "
        f"{calls['n_unparsed']} unparsed, {calls['n_quote_not_found']} quotes not found, "
        f"{calls['n_failed']} failed; {calls['wall_s']} s ({calls['pairs_per_s']} pairs/s). "
        f"Rerun: {rerun['n_calls_sent']} calls, {rerun['n_labelled']} labelled, "
        f"{rerun['wall_s']} s"
    )
    memory = figures["plan_memory"]
    print(
        f"plan memory: {memory['n_pending_pairs']} pending pairs, batches of "
        f"{memory['pairs_per_batch']}: keys and one batch {memory['keys_and_one_batch_mib']} MiB "
        f"vs every pair's turns at once {memory['every_pair_at_once_mib']} MiB "
        f"(ratio {memory['ratio']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=3, help="sandbox traffic days")
    parser.add_argument("--conversations", type=int, default=300, help="conversations a day")
    parser.add_argument("--config", default="smoke", help="configs/<name>.yaml to start from")
    parser.add_argument(
        "--seed", type=int, default=None, help="sandbox.seed (default: the config's)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as workdir:
        figures = run(args.days, args.conversations, args.config, args.seed, Path(workdir))
    figures["total_wall_s"] = round(time.perf_counter() - started, 1)
    print_table(figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
