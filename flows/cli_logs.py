"""`flywheel logs add PATH...`: production conversations and their feedback into the warehouse,
their prompts into the pool (pool/logs_ingest.py); with `logs.classify` on, then the implicit
feedback in the users' next turns.

`flywheel logs classify`: the classifier (`logs.classifier`, else the judge's endpoint) reads
every logged (answer, user's next turn) not labelled by `logs.classifier_prompt_version` yet
and stores what it finds as implicit feedback (tasks/classify_feedback.py). An endpoint with
`base_url: sandbox` is served by the embedded sandbox, started for the command.

Exit status of both: 0 done (every pair read: labelled, no feedback, unparsed or quote not
found, each counted); 1 some classifier calls failed after their retries (nothing stored for
those pairs; run it again to ask them again); 2 bad input (a missing file, a log with user ids
and no salt, a classifier model the sandbox lacks), nothing stored.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flywheel.config import Config, EndpointConfig
from flywheel.config.checks import SANDBOX_URL

EXIT_CALLS_FAILED = 1


def add_logs_commands(
    commands: argparse._SubParsersAction,
    add_config_argument: Callable[[argparse.ArgumentParser], None],
) -> None:
    """`logs add`, `logs classify`."""
    logs = commands.add_parser("logs", help="production conversations and their feedback")
    actions = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="ingest log files (OpenAI logs, LangSmith, Langfuse, Chatbot Arena, messages with "
        "feedback); a file read before adds only what is new; then, with logs.classify, "
        "classify the new users' turns",
    )
    add_config_argument(add)
    add.add_argument("paths", nargs="+", metavar="PATH", help="log files (.jsonl, .json, .gz)")
    add.add_argument("--source", default=None, help="source name (default: logs.source)")
    classify = actions.add_parser(
        "classify",
        help="read each logged user's next turn for implicit feedback (repeat, correction, "
        "complaint, clarification, positive) with logs.classifier; only pairs not read yet. "
        "Exit 0 done, 1 some calls failed (rerun), 2 bad input",
    )
    add_config_argument(classify)


@contextmanager
def running_classifier(config: Config) -> Iterator[EndpointConfig]:
    """The classifier endpoint, calling the embedded sandbox (started here) when it uses it
    (the config's load refused a model the sandbox lacks)."""
    from flywheel.tasks.classify_feedback import classifier_endpoint

    endpoint = classifier_endpoint(config)
    if endpoint.base_url != SANDBOX_URL:
        yield endpoint
        return
    from flywheel.sandbox.server import start_sandbox

    with start_sandbox(config.sandbox) as server:
        yield endpoint.at_sandbox(server.base_url)


def classify_command(config: Config) -> int:
    """Classify, print the summary; the exit status of the module doc."""
    from flywheel.tasks.classify_feedback import classify_logged_feedback

    with running_classifier(config) as endpoint:
        report = classify_logged_feedback(config, endpoint)
    print(report.summary())
    return EXIT_CALLS_FAILED if report.n_failed else 0


def command_logs(config: Config, args: argparse.Namespace) -> int:
    if args.logs_command == "classify":
        return classify_command(config)
    from flywheel.pool.logs_ingest import add_log_files

    print(add_log_files(config, args.paths, args.source).summary())
    return classify_command(config) if config.logs.classify else 0
