"""Benchmark of the prompt pool's ingest: dedup and decontamination at a million prompts.

    python benchmarks/bench_prompts.py                      # 1,000,000 prompts, 2,000 eval
    python benchmarks/bench_prompts.py --n-prompts 50000    # a quick run

1. generate  (a child process, not timed) a JSONL eval file and a JSONL pool file of
             synthetic prompts, 30-80 words from a Zipf-like 30k-word vocabulary behind
             common instruction openers; 20% are chat `messages` with a system turn. The pool
             plants 10% exact duplicates (verbatim or re-spaced copies of earlier prompts),
             5% near-duplicates (an earlier prompt with one word replaced) and 0.1%
             contaminations (an eval prompt with one word replaced and its case changed, or a
             15-word passage of an eval prompt inside a new prompt).
2. ingest    `add_prompt_file(--eval)` for the eval file, then `add_prompt_file` for the pool,
             timed, on at most `--cores` CPU cores; peak memory is the process's max RSS.
3. top up    a further 1,000-prompt file into the full pool (rebuilds the LSH index from the
             stored prompts), timed.
4. score     recall of each kind of plant (read back from the warehouse), and false removals
             among the unique prompts.

Prints the figures, then one JSON line. Targets: ingest under 300 s and 4 GiB on 2 cores,
near-duplicate recall >= 0.95.
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
from flywheel.pool.dedup import jaccard, shingle_sets  # noqa: E402
from flywheel.pool.ingest import add_prompt_file  # noqa: E402
from flywheel.warehouse.store import connect  # noqa: E402

VOCAB_SIZE = 30_000
CATEGORIES = ["writing", "coding", "math", "reasoning", "qa", "summarise", "roleplay", "extract"]
OPENERS = [
    "write a short story about",
    "explain in simple terms",
    "summarise the following text",
    "give three reasons why",
    "what is the difference between",
    "translate into french",
    "list the steps to",
    "describe",
    "compare",
    "please answer the question",
    "can you help me with",
    "write a poem about",
]
SYSTEM_PROMPT = "You are a helpful assistant."
TARGET_WALL_S = 300.0
TARGET_PEAK_GIB = 4.0
TARGET_NEAR_RECALL = 0.95


# ------------------------------------------------------------------------------ generation


class TextMaker:
    """Synthetic prompts: word indices drawn once, texts rendered on demand."""

    def __init__(self, n_texts: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        word_lengths = rng.integers(3, 11, VOCAB_SIZE)
        self.vocab = ["".join(rng.choice(letters, n)) for n in word_lengths]
        weights = 1.0 / (np.arange(VOCAB_SIZE) + 10.0)
        self.lengths = rng.integers(30, 81, n_texts)
        self.words = rng.choice(VOCAB_SIZE, size=(n_texts, 80), p=weights / weights.sum()).astype(
            np.uint16
        )
        self.openers = rng.integers(0, len(OPENERS), n_texts)
        self.rng = rng

    def words_of(self, i: int) -> list[str]:
        return [self.vocab[w] for w in self.words[i, : self.lengths[i]]]

    def render(self, words: list[str], opener: int) -> str:
        return (OPENERS[opener] + " " + " ".join(words)).capitalize() + "?"

    def text(self, i: int) -> str:
        return self.render(self.words_of(i), self.openers[i])

    def one_word_changed(self, i: int) -> str:
        words = self.words_of(i)
        position = int(self.rng.integers(0, len(words)))
        replacement = words[position]
        while replacement == words[position]:
            replacement = self.vocab[int(self.rng.integers(0, VOCAB_SIZE))]
        words[position] = replacement
        return self.render(words, self.openers[i])


def record(text: str, category: str, chat: bool) -> str:
    if chat:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": text},
        ]
        return json.dumps({"messages": messages, "category": category})
    return json.dumps({"prompt": text, "category": category})


def generate(workdir: Path, n_prompts: int, n_eval: int, seed: int) -> None:
    """Write eval.jsonl, pool.jsonl and truth.npz (the plants) under `workdir`."""
    rng = np.random.default_rng(seed + 1)
    evals = TextMaker(n_eval, seed + 2)
    eval_categories = rng.integers(0, len(CATEGORIES), n_eval)
    with (workdir / "eval.jsonl").open("w") as out:
        for i in range(n_eval):
            out.write(record(evals.text(i), CATEGORIES[eval_categories[i]], chat=False) + "\n")

    kinds = rng.choice(4, size=n_prompts, p=[0.849, 0.10, 0.05, 0.001])  # unique/exact/near/contam
    kinds[:100] = 0  # plants need earlier originals
    bases = TextMaker(n_prompts, seed + 3)
    categories = rng.integers(0, len(CATEGORIES), n_prompts)
    chat = rng.random(n_prompts) < 0.2
    unique_lines: list[int] = []
    truth: dict[str, list[int]] = {k: [] for k in ("exact", "exact_of", "near", "near_of")}
    truth |= {"contam": [], "contam_of": [], "unique": []}
    with (workdir / "pool.jsonl").open("w") as out:
        for i in range(n_prompts):
            line_no = i + 1
            kind = kinds[i]
            if kind == 0:
                text, source_line = bases.text(i), line_no
                unique_lines.append(line_no)
                truth["unique"].append(line_no)
            elif kind == 3:
                j = int(rng.integers(0, n_eval))
                if rng.random() < 0.5:
                    text = evals.one_word_changed(j).upper()
                else:
                    passage = evals.words_of(j)[5:20]
                    words = bases.words_of(i)
                    text = bases.render(words[:10] + passage + words[10:], bases.openers[i])
                truth["contam"].append(line_no)
                truth["contam_of"].append(j)
            else:
                source_line = unique_lines[int(rng.integers(0, len(unique_lines)))]
                base_text = bases.text(source_line - 1)
                chat[i] = chat[source_line - 1]  # a copy keeps the original's format
                if kind == 1:
                    text = base_text if rng.random() < 0.5 else "  " + base_text.replace(" ", "  ")
                    truth["exact"].append(line_no)
                    truth["exact_of"].append(source_line)
                else:
                    text = bases.one_word_changed(source_line - 1)
                    truth["near"].append(line_no)
                    truth["near_of"].append(source_line)
            out.write(record(text, CATEGORIES[categories[i]], bool(chat[i])) + "\n")
    top_up = TextMaker(1000, seed + 4)
    with (workdir / "top_up.jsonl").open("w") as out:
        for i in range(1000):
            out.write(record(top_up.text(i), "qa", chat=False) + "\n")
    np.savez(workdir / "truth.npz", **{k: np.array(v, dtype=np.int64) for k, v in truth.items()})


# ------------------------------------------------------------------------------ measuring


def bench_config(workdir: Path) -> Config:
    data = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())
    data["warehouse"]["path"] = str(workdir / "bench.duckdb")
    data["student"]["path"] = str(workdir / "student")
    data["training"]["output_dir"] = str(workdir / "models")
    return parse_config(data, "configs/demo.yaml (benchmark copy)")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB


def line_outcomes(config: Config, pool_path: Path) -> dict[str, np.ndarray]:
    """Per pool line (index line_no - 1): prompt id, status, duplicate_of, contaminated_by."""
    query = """
        select o.line_no, o.prompt_id, p.status, p.duplicate_of, p.contaminated_by
        from prompt_occurrences as o
        join prompts as p using (prompt_id)
        where o.file_path = ?
        order by o.line_no
    """
    with connect(config.warehouse.path) as con:
        frame = con.execute(query, [str(pool_path.resolve())]).df()
    return {c: frame[c].to_numpy() for c in frame.columns}


def score(config: Config, workdir: Path, n_eval: int) -> dict[str, float]:
    truth = dict(np.load(workdir / "truth.npz"))
    out = line_outcomes(config, workdir / "pool.jsonl")
    index = {int(line): i for i, line in enumerate(out["line_no"])}
    pid, status = out["prompt_id"], out["status"]
    dup_of, contam_by = out["duplicate_of"], out["contaminated_by"]

    def rows(lines: np.ndarray) -> np.ndarray:
        return np.array([index[int(x)] for x in lines], dtype=np.int64)

    exact, exact_of = rows(truth["exact"]), rows(truth["exact_of"])
    near, near_of = rows(truth["near"]), rows(truth["near_of"])
    contam, unique = rows(truth["contam"]), rows(truth["unique"])
    near_found = (status[near] == "near_duplicate") & (dup_of[near] == pid[near_of])
    exact_found = pid[exact] == pid[exact_of]
    contam_found = status[contam] == "contaminated"
    eval_ids = set(_eval_ids(config))
    contam_right = np.array([c in eval_ids for c in contam_by[contam]], dtype=bool)
    falsely_removed = status[unique] != "active"
    # the exact Jaccard of each near-duplicate plant, to show they are near-duplicates by the
    # configured definition (a sample keeps this fast)
    pool_texts = _texts_of_lines(
        workdir / "pool.jsonl", set(truth["near"][:2000]) | set(truth["near_of"][:2000])
    )
    similarities = [
        jaccard(*shingle_sets([pool_texts[a], pool_texts[b]], config.prompts.shingle_words))
        for a, b in zip(truth["near"][:2000], truth["near_of"][:2000], strict=True)
    ]
    return {
        "n_exact_planted": len(exact),
        "exact_recall": float(exact_found.mean()),
        "n_near_planted": len(near),
        "near_recall": float(near_found.mean()),
        "near_planted_min_jaccard": float(min(similarities)),
        "n_contaminated_planted": len(contam),
        "contamination_recall": float((contam_found & contam_right).mean()),
        "n_unique": len(unique),
        "unique_falsely_removed": int(falsely_removed.sum()),
    }


def _eval_ids(config: Config) -> list[str]:
    with connect(config.warehouse.path) as con:
        rows = con.execute("select prompt_id from prompts where split = 'eval'").fetchall()
    return [r[0] for r in rows]


def _texts_of_lines(path: Path, lines: set[int]) -> dict[int, str]:
    texts: dict[int, str] = {}
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if line_no in lines:
                obj = json.loads(line)
                texts[line_no] = (
                    obj["prompt"] if "prompt" in obj else obj["messages"][-1]["content"]
                )
    return texts


def limit_cores(n_cores: int) -> int:
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:n_cores])
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=1_000_000)
    parser.add_argument("--n-eval", type=int, default=2_000)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="kept afterwards (default: a temporary folder)"
    )
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_prompts_"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.generate_only:
        generate(workdir, args.n_prompts, args.n_eval, args.seed)
        return

    n_cores = limit_cores(args.cores)
    started = time.perf_counter()
    command = [sys.executable, __file__, "--generate-only", "--workdir", str(workdir)]
    command += ["--n-prompts", str(args.n_prompts), "--n-eval", str(args.n_eval)]
    subprocess.run(command + ["--seed", str(args.seed)], check=True)
    generate_s = time.perf_counter() - started
    pool_mib = (workdir / "pool.jsonl").stat().st_size / 2**20
    print(f"generated {args.n_prompts:,} pool prompts ({pool_mib:,.0f} MiB) in {generate_s:.0f} s")

    config = bench_config(workdir)
    started, cpu_started = time.perf_counter(), time.process_time()
    eval_report = add_prompt_file(config, workdir / "eval.jsonl", split="eval")
    pool_report = add_prompt_file(config, workdir / "pool.jsonl")
    ingest_s = time.perf_counter() - started
    ingest_cpu_s = time.process_time() - cpu_started  # all threads, DuckDB's included
    peak_gib = peak_rss_gib()
    print(eval_report.summary())
    print(pool_report.summary())

    started = time.perf_counter()
    top_up = add_prompt_file(config, workdir / "top_up.jsonl")
    top_up_s = time.perf_counter() - started
    print(top_up.summary())

    figures = {
        "n_prompts": args.n_prompts,
        "n_eval": args.n_eval,
        "cores": n_cores,
        "ingest_wall_s": round(ingest_s, 1),
        "ingest_cpu_s": round(ingest_cpu_s, 1),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "prompts_per_s": round(args.n_prompts / ingest_s),
        "peak_rss_gib": round(peak_gib, 2),
        "top_up_1000_wall_s": round(top_up_s, 1),
        "n_added": pool_report.n_added,
        "n_exact_duplicates": pool_report.n_exact_duplicates,
        "n_near_duplicates": pool_report.n_near_duplicates,
        "n_contaminated": pool_report.n_contaminated,
        **score(config, workdir, args.n_eval),
    }
    figures["meets_targets"] = bool(
        figures["ingest_wall_s"] < TARGET_WALL_S
        and figures["peak_rss_gib"] < TARGET_PEAK_GIB
        and figures["near_recall"] >= TARGET_NEAR_RECALL
    )
    print(
        f"ingest {figures['ingest_wall_s']} s on {n_cores} cores (CPU {figures['ingest_cpu_s']} s, "
        f"load average {figures['load_average_1min']}) "
        f"({figures['prompts_per_s']:,} prompts/s), peak RSS {figures['peak_rss_gib']} GiB; "
        f"recall: exact {figures['exact_recall']:.3f}, near {figures['near_recall']:.3f} "
        f"(planted min Jaccard {figures['near_planted_min_jaccard']:.2f}), contamination "
        f"{figures['contamination_recall']:.3f}; unique prompts falsely removed "
        f"{figures['unique_falsely_removed']}; top-up of 1,000 into the full pool "
        f"{figures['top_up_1000_wall_s']} s"
    )
    print(json.dumps(figures))
    if args.workdir is None:
        shutil.rmtree(workdir)  # ~1.5 GiB at a million prompts


if __name__ == "__main__":
    main()
