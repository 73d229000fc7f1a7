"""Judge-call throughput through llm/calls.py against the sandbox with injected latency.

Sends `--n-calls` distinct judge requests (default 2,000) at `--concurrency` (default 64) to a
sandbox judge that answers after `--latency-ms` (default 200), then `--n-sequential` (default
100) at concurrency 1 for comparison. The whole path is measured: call ids, one cache query,
the async openai client, and the write of every `llm_calls` row to a fresh DuckDB warehouse
(a call keeps a place in the commit backlog until its row is committed, so a killed run repeats
at most 2 x `concurrency` calls). The ideal rate is concurrency / latency; the target is a
ratio of at least 0.9, also when every commit is slow: the concurrent run is repeated with each
`--commit-delays-ms` (default 0, 20 and 50) added to every transaction after its commit, as on a
network or cloud volume. The writer's flushes (transactions) are counted and timed. Calls go
through the endpoint's default `http_client` (aiohttp); one more run without commit delay uses
the SDK's httpx transport, the peer of the transport.

The sandbox runs in its own process by default (as a real endpoint would); `--in-process`
runs it in a thread of this process instead. Prints one JSON line of figures.

    python benchmarks/bench_calls.py [--n-calls 2000] [--concurrency 64] [--latency-ms 200]
        [--commit-delays-ms 0,20,50]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from flywheel.config import JudgeConfig, SandboxConfig, SandboxModelConfig, WarehouseConfig  # noqa: E402
from flywheel.evaluators.judge_requests import build_judge_messages  # noqa: E402
from flywheel.llm.calls import CallBatchStats, run_calls, run_sync  # noqa: E402
from flywheel.llm.client import CallResult, ChatRequest  # noqa: E402
from flywheel.sandbox.skills import generate_tasks  # noqa: E402
from flywheel.warehouse.writer import RowWriter  # noqa: E402

TARGET_RATIO = 0.9
SERVE_SNIPPET = (
    "import sys; from flywheel.config import SandboxConfig; from sandbox.server import serve_forever; "
    "serve_forever(SandboxConfig.model_validate_json(sys.argv[1]), 0)"
)


@contextmanager
def running_sandbox(config: SandboxConfig, in_process: bool) -> Iterator[str]:
    """The base URL of a running sandbox (a child process, or a thread when `in_process`)."""
    if in_process:
        from flywheel.sandbox.server import start_sandbox

        with start_sandbox(config) as server:
            yield server.base_url
        return
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE_SNIPPET, config.model_dump_json()],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert child.stderr is not None
        line = child.stderr.readline()
        match = re.search(r"(http://\S+/v1)", line)
        if not match:
            raise RuntimeError(f"the sandbox did not start: {line}{child.stderr.read()[:2000]}")
        time.sleep(0.5)  # uvicorn prints after binding; give it a moment to accept
        yield match.group(1)
    finally:
        child.terminate()
        child.wait(timeout=10)


def judge_requests(judge: JudgeConfig, n_requests: int, offset: int) -> list[ChatRequest]:
    """`n_requests` distinct judge requests over sandbox skill prompts."""
    tasks = generate_tasks(n_requests + offset, seed=11)[offset:]
    return [
        ChatRequest.for_endpoint(
            judge,
            build_judge_messages(t.prompt, f"The answer is {t.answer}.", "I am not sure.", "v1"),
        )
        for t in tasks
    ]


class SlowCommitWriter(RowWriter):
    """A row writer whose every transaction takes `delay_s` longer after its commit."""

    def __init__(self, warehouse: WarehouseConfig, delay_s: float) -> None:
        super().__init__(warehouse)
        self.delay_s = delay_s

    def _write_transaction(self, con, rows, held) -> None:  # type: ignore[no-untyped-def]
        super()._write_transaction(con, rows, held)
        time.sleep(self.delay_s)


def send_and_store(
    judge: JudgeConfig, requests: list[ChatRequest], writer: RowWriter
) -> tuple[list[CallResult], CallBatchStats]:
    """What `call_endpoint` does, through the given writer."""

    async def main() -> tuple[list[CallResult], CallBatchStats]:
        stats = CallBatchStats()
        async with writer:
            results = await run_calls(
                judge,
                requests,
                warehouse=writer.warehouse,
                writer=writer,
                stats=stats,
            )
        stats.n_flushes, stats.flush_s = writer.n_flushes, writer.flush_s
        return results, stats

    return run_sync(main())


def timed_run(
    judge: JudgeConfig,
    requests: list[ChatRequest],
    warehouse_path: Path,
    commit_delay_ms: float = 0.0,
) -> dict[str, float]:
    """Send `requests` through the call path to a fresh warehouse; rate, latency, counts."""
    warehouse = WarehouseConfig(path=str(warehouse_path), lock_timeout_s=30)
    writer = SlowCommitWriter(warehouse, commit_delay_ms / 1000)
    cpu_before_s = time.process_time()
    started = time.perf_counter()
    results, stats = send_and_store(judge, requests, writer)
    wall_s = time.perf_counter() - started
    client_cpu_s = time.process_time() - cpu_before_s
    latencies_ms = sorted(r.latency_ms for r in results if r.latency_ms is not None)
    return {
        "commit_delay_ms": commit_delay_ms,
        "mean_latency_ms": round(statistics.fmean(latencies_ms), 1),
        "p95_latency_ms": round(latencies_ms[int(0.95 * (len(latencies_ms) - 1))], 1),
        "n_calls": len(requests),
        "n_failed": sum(not r.ok for r in results),
        "n_sent": stats.n_sent,
        "wall_s": round(wall_s, 3),
        "calls_per_s": round(len(requests) / wall_s, 2),
        "client_cpu_ms_per_call": round(1000 * client_cpu_s / len(requests), 2),
        "n_flushes": stats.n_flushes,
        "mean_flush_ms": round(1000 * stats.flush_s / max(1, stats.n_flushes), 2),
        "rows_per_flush": round(stats.n_sent / max(1, stats.n_flushes), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--n-sequential", type=int, default=100)
    parser.add_argument("--commit-delays-ms", default="0,20,50", help="comma-separated")
    parser.add_argument("--in-process", action="store_true", help="run the sandbox in a thread")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    sandbox = SandboxConfig(
        models={
            "bench-judge": SandboxModelConfig(
                role="judge", latency_ms=args.latency_ms, malformed_rate=0.0
            )
        }
    )
    judge = JudgeConfig(
        model="bench-judge", max_concurrency=args.concurrency, timeout_s=30, max_tokens=256
    )
    sequential_judge = judge.model_copy(update={"max_concurrency": 1})
    latency_s = args.latency_ms / 1000
    commit_delays_ms = [float(d) for d in args.commit_delays_ms.split(",")]
    ideal_per_s = args.concurrency / latency_s if latency_s > 0 else float("inf")
    with tempfile.TemporaryDirectory() as tmp, running_sandbox(sandbox, args.in_process) as url:
        judge, sequential_judge = judge.at_sandbox(url), sequential_judge.at_sandbox(url)
        concurrent = []
        for i, delay_ms in enumerate(commit_delays_ms):
            offset = i * args.n_calls  # distinct calls: nothing comes from a cache
            run = timed_run(
                judge,
                judge_requests(judge, args.n_calls, offset),
                Path(tmp) / f"concurrent-{i}.duckdb",
                delay_ms,
            )
            run["ratio_to_ideal"] = round(run["calls_per_s"] / ideal_per_s, 3)
            concurrent.append(run)
            print(
                f"commit delay {delay_ms:g} ms: {run['calls_per_s']:.0f} calls/s of"
                f" {ideal_per_s:.0f} ideal = {run['ratio_to_ideal']:.2f}"
                f" ({run['n_flushes']} flushes of {run['rows_per_flush']} rows,"
                f" {run['mean_flush_ms']} ms each)",
                file=sys.stderr,
            )
        httpx_judge = judge.model_copy(update={"http_client": "httpx"})
        offset = len(commit_delays_ms) * args.n_calls
        httpx_run = timed_run(
            httpx_judge,
            judge_requests(judge, args.n_calls, offset),
            Path(tmp) / "concurrent-httpx.duckdb",
        )
        httpx_run["ratio_to_ideal"] = round(httpx_run["calls_per_s"] / ideal_per_s, 3)
        print(
            f"httpx transport, no commit delay: {httpx_run['calls_per_s']:.0f} calls/s ="
            f" {httpx_run['ratio_to_ideal']:.2f}; aiohttp / httpx ="
            f" {concurrent[0]['calls_per_s'] / httpx_run['calls_per_s']:.2f}",
            file=sys.stderr,
        )
        sequential = timed_run(
            sequential_judge,
            judge_requests(judge, args.n_sequential, offset + args.n_calls),
            Path(tmp) / "sequential.duckdb",
        )
    worst_ratio = min(run["ratio_to_ideal"] for run in concurrent)
    figures = {
        "bench": "calls",
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),  # other work on the machine skews rates
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "sandbox": "thread" if args.in_process else "process",
        "concurrent": concurrent,
        "ideal_calls_per_s": round(ideal_per_s, 2) if latency_s > 0 else None,
        "ratio_to_ideal": concurrent[0]["ratio_to_ideal"],
        "worst_ratio_to_ideal": worst_ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": worst_ratio >= TARGET_RATIO,
        "httpx_transport": httpx_run,
        "aiohttp_over_httpx": round(concurrent[0]["calls_per_s"] / httpx_run["calls_per_s"], 2),
        "sequential": sequential
        | {"ideal_calls_per_s": round(1 / latency_s, 2) if latency_s > 0 else None},
        "speedup_vs_sequential": round(concurrent[0]["calls_per_s"] / sequential["calls_per_s"], 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
