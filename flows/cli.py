"""The `flywheel` command.

Exit status: 0 on success, 2 for an invalid configuration or invocation or a damaged
warehouse, 1 for any other failure (with a message that says what went wrong and what to do).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import pandas as pd

from flywheel.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from flywheel.errors import InputError
from flywheel.flows.cli_logs import add_logs_commands, command_logs
from flywheel.flows.cli_warehouse import add_warehouse_commands, command_warehouse
from flywheel.llm.stages.registry import DATA_KIND_NAMES

EXIT_FAILURE = 1
EXIT_USAGE = 2


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG_PATH),
        help=f"YAML recipe (default: {DEFAULT_CONFIG_PATH})",
    )


Commands = argparse._SubParsersAction  # what add_subparsers returns: one add_parser per command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="An Arena-Learning data flywheel for LLM post-training: battles, judging, "
        "mining into DuckDB, TRL training and A/B-gated promotion, run by Prefect.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_round_commands(commands)
    _add_data_commands(commands)
    _add_prompts_commands(commands)
    add_logs_commands(commands, _add_config_argument)
    _add_models_commands(commands)
    _add_sandbox_commands(commands)
    add_warehouse_commands(commands, _add_config_argument)
    _add_serve_command(commands)
    return parser


def _add_round_commands(commands: Commands) -> None:
    """`run` (the main job) and `init` (the round-0 student)."""
    run = commands.add_parser("run", help="run rounds of the flywheel (the main job)")
    _add_config_argument(run)
    run.add_argument(
        "--rounds", type=int, default=None, help="rounds to run (default: schedule.rounds)"
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="first retry the failed calls of finished rounds and mine what they unblock",
    )

    init = commands.add_parser("init", help="build the sandbox's round-0 student")
    _add_config_argument(init)
    init.add_argument("--force", action="store_true", help="rebuild even if it exists")


def _add_data_commands(commands: Commands) -> None:
    """`sql` (read-only queries) and `export` (mined data for TRL)."""
    sql = commands.add_parser("sql", help="run one read-only query, or list tables and views")
    _add_config_argument(sql)
    sql.add_argument("query", nargs="?", help="a SELECT; omit to list tables and views")
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table")

    export = commands.add_parser("export", help="write mined data as TRL-ready JSONL or Parquet")
    _add_config_argument(export)
    export.add_argument("--kind", choices=DATA_KIND_NAMES, required=True)
    export.add_argument("--round", type=int, default=None, dest="round_id", help="one round only")
    export.add_argument("--out", required=True, help="FILE.jsonl or FILE.parquet")


def _add_prompts_commands(commands: Commands) -> None:
    """`prompts add` and `prompts stats`: the prompt pool."""
    prompts = commands.add_parser("prompts", help="manage the prompt pool")
    prompt_commands = prompts.add_subparsers(
        dest="prompts_command", required=True, metavar="ACTION"
    )
    add = prompt_commands.add_parser(
        "add", help="ingest a prompt file (JSONL, JSON, CSV, Parquet; gzip too)"
    )
    _add_config_argument(add)
    add.add_argument("file")
    add.add_argument("--source", default=None, help="source name (default: the file's name)")
    add.add_argument("--eval", action="store_true", help="add to the held-out eval split")
    stats = prompt_commands.add_parser("stats", help="counts per source, category, split, slice")
    _add_config_argument(stats)


def _add_models_commands(commands: Commands) -> None:
    """`models prune`: model checkpoints."""
    models = commands.add_parser("models", help="manage model checkpoints")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    prune = model_commands.add_parser(
        "prune", help="delete rejected checkpoints beyond training.keep_rejected"
    )
    _add_config_argument(prune)
    prune.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    prune.add_argument(
        "--keep", type=int, default=None, help="rejected checkpoints to keep (default: config)"
    )


def _add_sandbox_commands(commands: Commands) -> None:
    """`sandbox serve`: the embedded offline arena over HTTP."""
    sandbox = commands.add_parser("sandbox", help="the embedded offline arena")
    sandbox_commands = sandbox.add_subparsers(
        dest="sandbox_command", required=True, metavar="ACTION"
    )
    serve_sandbox = sandbox_commands.add_parser("serve", help="serve the sandbox models over HTTP")
    _add_config_argument(serve_sandbox)
    serve_sandbox.add_argument("--port", type=int, default=8000)
    traffic = sandbox_commands.add_parser(
        "traffic", help="write a day of simulated users' logs, with its ground truth apart"
    )
    _add_config_argument(traffic)
    traffic.add_argument("--day", type=int, required=True, help="day number (from 1)")
    traffic.add_argument("--out", required=True, help="folder for the day's log files")
    traffic.add_argument("--conversations", type=int, default=200, help="conversations a day")
    traffic.add_argument("--users", type=int, default=50, help="distinct simulated users")
    traffic.add_argument(
        "--model",
        default=None,
        help="sandbox model that answers, or `champion`: the warehouse's current champion "
        "through student.backend (default: the least accurate sandbox reference)",
    )
    traffic.add_argument("--versus", default=None, help="second model of arena votes")
    traffic.add_argument(
        "--flatterers",
        type=float,
        default=None,
        metavar="SHARE",
        help="share of the users who are the planted flatterers, who thumb up every answer "
        "that commits to a result (0: a clean population; default: the personas' shares)",
    )


def _add_serve_command(commands: Commands) -> None:
    """`serve`: the nightly deployment."""
    serve = commands.add_parser("serve", help="serve the nightly deployment to a Prefect server")
    _add_config_argument(serve)
    serve.add_argument("--cron", default=None, help="cron schedule (default: schedule.cron)")


def print_frame(frame: pd.DataFrame, output_format: str = "table") -> None:
    if output_format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif output_format == "json":
        sys.stdout.write(
            frame.to_json(orient="records", date_format="iso", force_ascii=False) + "\n"
        )
    elif frame.empty:
        print("(no rows)" if len(frame.columns) == 0 else " | ".join(frame.columns) + "\n(no rows)")
    else:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(frame.to_string(index=False))


def command_sql(config: Config, args: argparse.Namespace) -> int:
    from flywheel.warehouse.catalog import list_relations, run_read_only_query
    from flywheel.warehouse.store import connect_warehouse

    with connect_warehouse(config.warehouse, read_only=True) as con:
        frame = list_relations(con) if args.query is None else run_read_only_query(con, args.query)
    print_frame(frame, args.format)
    return 0


def command_export(config: Config, args: argparse.Namespace) -> int:
    from flywheel.llm.stages.registry import data_kind
    from flywheel.warehouse.export import export_rows, write_export
    from flywheel.warehouse.store import connect_warehouse

    kind = data_kind(args.kind)
    with connect_warehouse(config.warehouse, read_only=True) as con:
        rows = export_rows(con, kind.view, kind.columns, args.round_id)
    path = write_export(rows, args.out)
    scope = "all rounds" if args.round_id is None else f"round {args.round_id}"
    print(f"wrote {len(rows)} {args.kind} rows ({scope}) to {path}")
    return 0


def command_init(config: Config, args: argparse.Namespace) -> int:
    from flywheel.flows.progress import StepProgress, describe_student
    from flywheel.llm.gguf import converted_base, is_gguf
    from flywheel.sandbox.student import build_student

    if is_gguf(config.student.path):  # your model: converted once, nothing to build
        base = converted_base(config.student.path, config.training.output_dir, announce=print)
        print(f"round-0 student: {base} (converted from {config.student.path})")
        return 0
    progress = StepProgress("student-build-progress", "round-0 student: training", unit="step")
    try:
        report = build_student(config, force=args.force, on_progress=progress)
    finally:
        progress.close()
    print(describe_student(report))
    return 0


def command_prompts(config: Config, args: argparse.Namespace) -> int:
    from flywheel.pool.eval_set import prompt_stats
    from flywheel.pool.ingest import add_prompt_file

    if args.prompts_command == "add":
        report = add_prompt_file(config, args.file, args.source, "eval" if args.eval else "pool")
        print(report.summary())
        return 0
    for title, frame in prompt_stats(config).items():
        print(f"\n{title}")
        print_frame(frame)
    return 0


def command_models(config: Config, args: argparse.Namespace) -> int:
    from flywheel.tasks.prune import prune_checkpoints

    keep = config.training.keep_rejected if args.keep is None else args.keep
    if keep is None or keep < 0:
        raise InputError(
            "no retention to apply: training.keep_rejected is not set. Fix: set "
            "training.keep_rejected: K in the config, or pass --keep K (0 deletes every "
            "rejected checkpoint)."
        )
    print(prune_checkpoints(config, keep, dry_run=args.dry_run).summary())
    return 0


def command_sandbox(config: Config, args: argparse.Namespace) -> int:
    if args.sandbox_command == "traffic":
        from flywheel.sandbox.traffic_day import write_traffic_day

        report = write_traffic_day(
            config.sandbox,
            args.day,
            args.out,
            args.conversations,
            args.users,
            args.model,
            args.versus,
            config=config,
            flatterer_share=args.flatterers,
        )
        print(report.summary())
        return 0
    from flywheel.sandbox.server import serve_forever

    serve_forever(config.sandbox, args.port)
    return 0


def command_run(config: Config, args: argparse.Namespace) -> int:
    from flywheel.flows.prefect_env import quiet_prefect_defaults
    from flywheel.preflight import check_before_run

    check_before_run(config)
    quiet_prefect_defaults()  # before Prefect is imported: it reads its settings once
    from flywheel.flows.run_command import run_flywheel_cli

    return run_flywheel_cli(config, args.config, args.rounds, args.retry_failed)


def command_serve(config: Config, args: argparse.Namespace) -> int:
    from flywheel.preflight import check_before_run

    check_before_run(config)
    from flywheel.flows.nightly import serve_nightly

    serve_nightly(args.config, args.cron or config.schedule.cron, config.schedule.timezone)
    return 0


COMMANDS: dict[str, Callable[[Config, argparse.Namespace], int]] = {
    "run": command_run,
    "init": command_init,
    "sql": command_sql,
    "export": command_export,
    "prompts": command_prompts,
    "models": command_models,
    "sandbox": command_sandbox,
    "serve": command_serve,
    "warehouse": command_warehouse,
    "logs": command_logs,
}


def main(argv: list[str] | None = None) -> int:
    # flywheel shows its own progress: no Hugging Face bars (read when huggingface_hub is
    # imported, later); a user's explicit setting stays
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"flywheel: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](config, args)
    except KeyboardInterrupt:
        print(
            "flywheel: interrupted; finished work is in the warehouse, rerun to resume",
            file=sys.stderr,
        )
        return 130
    except (InputError, ValueError) as e:
        damage = _as_damage(e.__cause__, config) if e.__cause__ is not None else None
        print(f"flywheel: {damage or e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, InputError) or _is_usage_error(e) else EXIT_FAILURE
    except (RuntimeError, OSError) as e:
        print(f"flywheel: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as e:
        damage = _as_damage(e, config)
        if damage is None:
            raise
        print(f"flywheel: {damage}", file=sys.stderr)
        return EXIT_USAGE


def _as_damage(error: BaseException, config: Config) -> Exception | None:
    """DuckDB's error on reading a damaged block after the open (the file was damaged while
    in use; also when it was wrapped, as `flywheel sql` wraps a refused query), as the
    one-line damaged-warehouse error; None for any other error."""
    from flywheel.warehouse.integrity import damaged_from, is_damage_error

    if not is_damage_error(error):
        return None
    return damaged_from(error, config.warehouse.location)


def _is_usage_error(error: Exception) -> bool:
    from flywheel.warehouse.catalog import ReadOnlyQueryError

    return isinstance(error, ReadOnlyQueryError)


if __name__ == "__main__":
    raise SystemExit(main())
