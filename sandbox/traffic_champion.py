"""The sandbox's traffic answered by the warehouse's current champion, so the day's logs hold
the answers of the model the flywheel trains (and their feedback is about it).

`champion_answerer(config)` opens the champion (`warehouse.lifecycle.current_champion`) the way
the round's answer step does for `student.backend`:

- `local`: its checkpoint loaded once (`llm.checkpoints.LocalGenerator`), each answer generated
  with the student's decoding settings (greedy or sampled, `max_new_tokens`);
- `server` / `vllm`: its checkpoint served for the day (`llm.serving.serve_checkpoint`), asked
  like the round asks a served student (its stop tokens, its sampling);
- `endpoint`: the fixed `student.endpoint` made to answer as the champion
  (`llm.serving.fixed_endpoint`); the embedded sandbox started when it uses it.

Each answer is one request through the openai client (retries, timeout) or one local
generation; an answer that fails after its retries ends the day with the cause (a log cannot
hold a missing answer). Production answers are not the flywheel's calls: nothing is written to
the warehouse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flywheel.config import Config, EndpointConfig
from flywheel.config.checks import SANDBOX_URL
from flywheel.llm.client import ChatRequest, EndpointCaller
from flywheel.sandbox.traffic import Answerer
from flywheel.warehouse.lifecycle import current_champion


def endpoint_answerer(endpoint: EndpointConfig) -> Answerer:
    """Answers by one request to `endpoint` each (its sampling settings, its retries)."""

    async def ask(request: ChatRequest) -> str:
        caller = EndpointCaller(endpoint)
        try:
            result = await caller.call(request)
        finally:
            await caller.aclose()
        if not result.ok:
            raise RuntimeError(
                f"the champion's endpoint {endpoint.name!r} failed to answer a simulated user: "
                f"{result.error}"
            )
        return result.text or ""

    def answer(history: list[dict[str, str]], question: str) -> str:
        messages = [*history, {"role": "user", "content": question}]
        return asyncio.run(ask(ChatRequest.for_endpoint(endpoint, messages)))

    return answer


def local_answerer(config: Config, checkpoint: str) -> Answerer:
    """Answers generated in this process from `checkpoint` (loaded once)."""
    from flywheel.llm.checkpoints import LocalGenerator

    student = config.student
    generator = LocalGenerator.load(checkpoint, student.device)

    def answer(history: list[dict[str, str]], question: str) -> str:
        messages = [*history, {"role": "user", "content": question}]
        (generated,) = generator.generate(
            [messages],
            max_new_tokens=student.max_new_tokens,
            batch_size=1,
            do_sample=student.do_sample,
            temperature=student.temperature,
            seed=student.seed,
        )
        return generated.text

    return answer


@contextmanager
def champion_answerer(config: Config) -> Iterator[tuple[str, Answerer]]:
    """(the champion's version id, its answerer) while the block runs (module doc)."""
    champion = current_champion(config.warehouse)
    version, checkpoint = champion.version_id, champion.checkpoint_path
    backend = config.student.answer_backend
    if backend == "local":
        yield version, local_answerer(config, checkpoint)
    elif backend == "endpoint":
        with _at_sandbox_if_used(config) as sandbox_url:
            from flywheel.llm.serving import fixed_endpoint

            endpoint = fixed_endpoint(config.student, version, checkpoint)
            if sandbox_url is not None:
                endpoint = endpoint.at_sandbox(sandbox_url)
            yield version, endpoint_answerer(endpoint)
    else:
        from flywheel.llm.checkpoints import checkpoint_stops
        from flywheel.llm.serving import serve_checkpoint, served_endpoint

        stop_ids, stops = checkpoint_stops(checkpoint)
        log_dir = Path(config.training.output_dir) / "serve-logs"
        with serve_checkpoint(
            config.student.serve, backend, checkpoint, version, log_dir
        ) as served:
            endpoint = served_endpoint(config.student, served, stop_ids, stops)
            yield version, endpoint_answerer(endpoint)


@contextmanager
def _at_sandbox_if_used(config: Config) -> Iterator[str | None]:
    """The running sandbox's URL when `student.endpoint` uses it (started here), else None."""
    endpoint = config.student.endpoint
    if endpoint is None or endpoint.base_url != SANDBOX_URL:
        yield None
        return
    from flywheel.sandbox.server import start_sandbox

    with start_sandbox(config.sandbox) as server:
        yield server.base_url
