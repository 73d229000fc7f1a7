"""Judge-call throughput and client CPU through llm/calls.py, against the bare openai SDK.

One sandbox process answers every run, with latency injected per model. Each client run is a
fresh child process, so its CPU time (`time.process_time`, every thread of the process: the
event loop and the warehouse writer's threads) is the client's alone, never the sandbox's.

1. Flywheel against the bare SDK, at `--latency-ms` (default 200) with `--concurrency` (64)
   for `--n-calls` (2,000) calls, and at `--slow-latency-ms` (2,000) with `--slow-concurrency`
   (256) for `--slow-n-calls` (1,280). The bare SDK is `AsyncOpenAI.chat.completions.create`
   under an `asyncio.Semaphore`, built with the same transport as flywheel's client (the
   endpoint's default `DefaultAioHttpClient`, the SDK's connection limits, the same timeout and
   no SDK retries), with no call ids, cache or warehouse. Flywheel is the whole call path:
   call ids, one cache query, the client with retries and slots, and every `llm_calls` row
   committed to a fresh DuckDB warehouse. The two alternate, `--repeats` (2) times each (sdk,
   flywheel, sdk, flywheel, ...), on the same requests; the ratios flywheel / SDK of calls/s
   and of client CPU per call are the medians over the pairs. Targets: calls/s at least 0.9 of
   the SDK's, client CPU per call at most 1.2x.
2. Flywheel at the fast latency with every commit slowed by each of `--commit-delays-ms`
   (default 20 and 50, as on a network or cloud volume), with the SDK's httpx transport
   (`http_client: httpx`), and `--n-sequential` (100) calls at concurrency 1.

Also printed: each flywheel run's rate as a fraction of the ideal (concurrency / latency).
Prints one JSON line of figures.

    python benchmarks/bench_calls.py [--n-calls 2000] [--slow-n-calls 1280] [--repeats 2]
        [--commit-delays-ms 20,50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import openai  # noqa: E402

from flywheel.config import JudgeConfig, SandboxConfig, SandboxModelConfig, WarehouseConfig  # noqa: E402
from flywheel.evaluators.judge_requests import build_judge_messages  # noqa: E402
from flywheel.llm.calls import CallBatchStats, run_calls, run_sync  # noqa: E402
from flywheel.llm.client import CallResult, ChatRequest  # noqa: E402
from flywheel.sandbox.skills import generate_tasks  # noqa: E402
from flywheel.warehouse.store import connect_warehouse  # noqa: E402
from flywheel.warehouse.writer import RowWriter  # noqa: E402

TARGET_RATIO_TO_IDEAL = 0.9
TARGET_RATE_RATIO = 0.9  # flywheel's calls/s over the bare SDK's, at least
TARGET_CPU_RATIO = 1.2  # flywheel's client CPU per call over the bare SDK's, at most
TIMEOUT_S = 30.0
SERVE_SNIPPET = (
    "import sys; from flywheel.config import SandboxConfig; from sandbox.server import serve_forever; "
    "serve_forever(SandboxConfig.model_validate_json(sys.argv[1]), 0)"
)


@dataclass(frozen=True)
class RunSpec:
    """One client run: who sends (`sdk` or `flywheel`), to which sandbox model, how many."""

    client: str
    url: str
    model: str
    latency_ms: float
    concurrency: int
    n_calls: int
    offset: int  # requests start at this skill task: runs with other offsets share no call
    warehouse_dir: str
    commit_delay_ms: float = 0.0
    http_client: str = "aiohttp"


@contextmanager
def running_sandbox(config: SandboxConfig) -> Iterator[str]:
    """The base URL of a sandbox running in a child process (as a real endpoint would)."""
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


def judge_of(spec: RunSpec) -> JudgeConfig:
    judge = JudgeConfig(
        model=spec.model,
        max_concurrency=spec.concurrency,
        timeout_s=TIMEOUT_S,
        max_tokens=256,
        http_client=spec.http_client,
    )
    return judge.at_sandbox(spec.url)


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


def measured(send: Callable[[], dict[str, Any]], n_calls: int) -> dict[str, Any]:
    """Run `send`; its figures plus wall time, calls/s and this process's CPU per call."""
    cpu_before_s = time.process_time()
    started = time.perf_counter()
    figures = send()
    wall_s = time.perf_counter() - started
    client_cpu_s = time.process_time() - cpu_before_s
    return figures | {
        "wall_s": round(wall_s, 3),
        "calls_per_s": round(n_calls / wall_s, 2),
        "client_cpu_ms_per_call": round(1000 * client_cpu_s / n_calls, 3),
    }


def flywheel_run(spec: RunSpec) -> dict[str, Any]:
    """(In a child process.) The requests through `run_calls` into a fresh warehouse."""
    judge = judge_of(spec)
    requests = judge_requests(judge, spec.n_calls, spec.offset)
    path = Path(spec.warehouse_dir) / f"{spec.client}-{spec.offset}-{time.monotonic_ns()}.duckdb"
    warehouse = WarehouseConfig(path=str(path), lock_timeout_s=30)
    with connect_warehouse(warehouse):
        pass  # created and migrated before the clock starts, as a round finds it
    writer = SlowCommitWriter(warehouse, spec.commit_delay_ms / 1000)

    async def main() -> tuple[list[CallResult], CallBatchStats]:
        stats = CallBatchStats()
        async with writer:
            results = await run_calls(
                judge, requests, warehouse=warehouse, writer=writer, stats=stats
            )
        return results, stats

    def send() -> dict[str, Any]:
        results, stats = run_sync(main())
        latencies_ms = sorted(r.latency_ms for r in results if r.latency_ms is not None)
        return {
            "n_failed": sum(not r.ok for r in results),
            "n_sent": stats.n_sent,
            "mean_latency_ms": round(statistics.fmean(latencies_ms), 1),
            "p95_latency_ms": round(latencies_ms[int(0.95 * (len(latencies_ms) - 1))], 1),
            "n_flushes": writer.n_flushes,
            "mean_flush_ms": round(1000 * writer.flush_s / max(1, writer.n_flushes), 2),
        }

    return measured(send, spec.n_calls)


def sdk_run(spec: RunSpec) -> dict[str, Any]:
    """(In a child process.) The same requests through the bare SDK, under a semaphore."""
    judge = judge_of(spec)
    bodies = [r.body(judge.model) for r in judge_requests(judge, spec.n_calls, spec.offset)]

    async def main() -> list[bool]:
        client = openai.AsyncOpenAI(
            api_key="no-key",
            base_url=judge.url,
            max_retries=0,
            timeout=TIMEOUT_S,
            http_client=openai.DefaultAioHttpClient(timeout=TIMEOUT_S),
        )
        semaphore = asyncio.Semaphore(spec.concurrency)

        async def call(body: dict[str, Any]) -> bool:
            async with semaphore:
                try:
                    reply = await client.chat.completions.create(**body)
                except openai.OpenAIError:
                    return False
                return reply.choices[0].message.content is not None

        async with client:
            return await asyncio.gather(*(call(body) for body in bodies))

    def send() -> dict[str, Any]:
        return {"n_failed": sum(not ok for ok in asyncio.run(main()))}

    return measured(send, spec.n_calls)


def in_child(spec: RunSpec) -> dict[str, Any]:
    """Run `spec` in a fresh child process; its figures, with the spec's settings."""
    run = sdk_run if spec.client == "sdk" else flywheel_run
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        figures = pool.submit(run, spec).result()
    settings = {k: getattr(spec, k) for k in ("client", "latency_ms", "concurrency", "n_calls")}
    return settings | figures


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("inf")


def compare_to_sdk(spec: RunSpec, repeats: int) -> dict[str, Any]:
    """SDK and flywheel alternating `repeats` times on the same requests; median ratios."""
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        runs.append(in_child(replace(spec, client="sdk")))
        runs.append(in_child(replace(spec, client="flywheel")))
    pairs = list(zip(runs[::2], runs[1::2], strict=True))
    rate_ratio = round(
        statistics.median(ratio(f["calls_per_s"], s["calls_per_s"]) for s, f in pairs), 3
    )
    cpu_ratio = round(
        statistics.median(
            ratio(f["client_cpu_ms_per_call"], s["client_cpu_ms_per_call"]) for s, f in pairs
        ),
        3,
    )
    ideal_per_s = spec.concurrency / (spec.latency_ms / 1000)
    print(
        f"{spec.latency_ms:g} ms latency, concurrency {spec.concurrency}, {spec.n_calls} calls:"
        f" flywheel / bare SDK: calls/s {rate_ratio:.2f} (target >= {TARGET_RATE_RATIO}),"
        f" client CPU per call {cpu_ratio:.2f}x (target <= {TARGET_CPU_RATIO});"
        f" per run (calls/s, CPU ms per call): "
        + ", ".join(
            f"{r['client']} {r['calls_per_s']:.0f} {r['client_cpu_ms_per_call']:.2f}" for r in runs
        )
        + f"; ideal {ideal_per_s:.0f} calls/s",
        file=sys.stderr,
    )
    return {
        "latency_ms": spec.latency_ms,
        "concurrency": spec.concurrency,
        "n_calls": spec.n_calls,
        "runs": runs,
        "rate_ratio_to_sdk": rate_ratio,
        "cpu_ratio_to_sdk": cpu_ratio,
        "flywheel_ratio_to_ideal": round(
            statistics.median(f["calls_per_s"] for _, f in pairs) / ideal_per_s, 3
        ),
        "meets_target": rate_ratio >= TARGET_RATE_RATIO and cpu_ratio <= TARGET_CPU_RATIO,
    }


def flywheel_variants(
    spec: RunSpec, commit_delays_ms: list[float], n_sequential: int
) -> dict[str, Any]:
    """Flywheel alone: slow commits, the httpx transport, and calls one at a time."""
    ideal_per_s = spec.concurrency / (spec.latency_ms / 1000)
    offset = spec.offset + spec.n_calls  # other requests than the comparison's
    delayed = []
    for delay_ms in commit_delays_ms:
        run = in_child(replace(spec, client="flywheel", offset=offset, commit_delay_ms=delay_ms))
        run["ratio_to_ideal"] = round(run["calls_per_s"] / ideal_per_s, 3)
        delayed.append(run | {"commit_delay_ms": delay_ms})
        print(
            f"commit delay {delay_ms:g} ms: {run['calls_per_s']:.0f} calls/s ="
            f" {run['ratio_to_ideal']:.2f} of ideal ({run['n_flushes']} flushes,"
            f" {run['mean_flush_ms']} ms each)",
            file=sys.stderr,
        )
    httpx_run = in_child(replace(spec, client="flywheel", offset=offset, http_client="httpx"))
    httpx_run["ratio_to_ideal"] = round(httpx_run["calls_per_s"] / ideal_per_s, 3)
    sequential = in_child(
        replace(spec, client="flywheel", offset=offset, concurrency=1, n_calls=n_sequential)
    )
    print(
        f"httpx transport: {httpx_run['calls_per_s']:.0f} calls/s ="
        f" {httpx_run['ratio_to_ideal']:.2f} of ideal, {httpx_run['client_cpu_ms_per_call']:.2f}"
        f" ms CPU per call; sequential: {sequential['calls_per_s']:.1f} calls/s",
        file=sys.stderr,
    )
    return {"commit_delayed": delayed, "httpx_transport": httpx_run, "sequential": sequential}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--slow-n-calls", type=int, default=1280)
    parser.add_argument("--slow-concurrency", type=int, default=256)
    parser.add_argument("--slow-latency-ms", type=float, default=2000.0)
    parser.add_argument("--repeats", type=int, default=2, help="sdk/flywheel pairs per latency")
    parser.add_argument("--n-sequential", type=int, default=100)
    parser.add_argument("--commit-delays-ms", default="20,50", help="comma-separated; '' none")
    parser.add_argument("--no-variants", action="store_true", help="only the SDK comparison")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.latency_ms <= 0 or args.slow_latency_ms <= 0 or args.repeats < 1:
        sys.exit("bench_calls: latencies must be above 0 ms and --repeats at least 1")
    load_before = os.getloadavg()[0]
    fast, slow = f"bench-judge-{args.latency_ms:g}", f"bench-judge-{args.slow_latency_ms:g}"
    sandbox = SandboxConfig(
        models={
            name: SandboxModelConfig(role="judge", latency_ms=latency_ms, malformed_rate=0.0)
            for name, latency_ms in ((fast, args.latency_ms), (slow, args.slow_latency_ms))
        }
    )
    commit_delays_ms = [float(d) for d in args.commit_delays_ms.split(",") if d.strip()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, running_sandbox(sandbox) as url:
        fast_spec = RunSpec(
            "flywheel", url, fast, args.latency_ms, args.concurrency, args.n_calls, 0, tmp
        )
        slow_spec = RunSpec(
            "flywheel", url, slow, args.slow_latency_ms, args.slow_concurrency,
            args.slow_n_calls, 0, tmp,
        )  # fmt: skip
        comparisons = [compare_to_sdk(s, args.repeats) for s in (fast_spec, slow_spec)]
        variants = (
            {}
            if args.no_variants
            else flywheel_variants(fast_spec, commit_delays_ms, args.n_sequential)
        )
    figures = {
        "bench": "calls",
        "cpu_cores": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),  # other work on the machine skews rates
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "sandbox": "process",
        "against_sdk": comparisons,
        "target_rate_ratio": TARGET_RATE_RATIO,
        "target_cpu_ratio": TARGET_CPU_RATIO,
        "meets_sdk_targets": all(c["meets_target"] for c in comparisons),
        "target_ratio_to_ideal": TARGET_RATIO_TO_IDEAL,
        **variants,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
