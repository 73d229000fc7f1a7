"""`flywheel logs add PATH...`: production conversations and their feedback into the warehouse,
their prompts into the pool (pool/logs_ingest.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from flywheel.config import Config


def add_logs_commands(
    commands: argparse._SubParsersAction,
    add_config_argument: Callable[[argparse.ArgumentParser], None],
) -> None:
    """`logs add`."""
    logs = commands.add_parser("logs", help="production conversations and their feedback")
    actions = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="ingest log files (OpenAI logs, LangSmith, Langfuse, Chatbot Arena, messages with "
        "feedback); a file read before adds only what is new",
    )
    add_config_argument(add)
    add.add_argument("paths", nargs="+", metavar="PATH", help="log files (.jsonl, .json, .gz)")
    add.add_argument("--source", default=None, help="source name (default: logs.source)")


def command_logs(config: Config, args: argparse.Namespace) -> int:
    from flywheel.pool.logs_ingest import add_log_files

    print(add_log_files(config, args.paths, args.source).summary())
    return 0
