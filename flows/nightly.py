"""The nightly schedule: serve the flywheel deployment to a running Prefect server.

The temporary server Prefect starts for ad-hoc runs cannot schedule; start one with
`prefect server start` and point PREFECT_API_URL at it (http://127.0.0.1:4200/api).

The served deployment is `flywheel/nightly`; `prefect.yaml` deploys the same flow to a work
pool as `flywheel/nightly-pool`, so the two never overwrite each other. Either way one round
runs at a time: a trigger that fires while a round is still running is cancelled by Prefect
(its state message: "Deployment concurrency limit reached."), and the next trigger runs
the round. When `flywheel serve` stops (Ctrl-C, SIGTERM) it pauses the deployment, which
deletes its scheduled runs, so none pile up as Late; the next `flywheel serve` resumes it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Schedule

from flywheel.flows.prefect_env import quiet_prefect_defaults

DEPLOYMENT_NAME = "nightly"
WORK_POOL_DEPLOYMENT_NAME = "nightly-pool"  # prefect.yaml's deployment
ROUNDS_AT_ONCE = 1


def require_prefect_server() -> str:
    api_url = os.environ.get("PREFECT_API_URL", "")
    if not api_url:
        raise RuntimeError(
            "PREFECT_API_URL is not set, and Prefect's temporary server cannot run schedules. "
            "Fix: start a server with `prefect server start` (UI at http://127.0.0.1:4200), then "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api and run `flywheel serve` again."
        )
    return api_url


def nightly_schedule(cron: str, timezone: str) -> Schedule:
    """The cron in the configured time zone (`0 2 * * *` in Europe/Berlin is 02:00 there)."""
    return Cron(cron, timezone=timezone)


def one_round_at_a_time() -> ConcurrencyLimitConfig:
    """A deployment concurrency limit of 1: an overlapping trigger is cancelled, not queued."""
    return ConcurrencyLimitConfig(
        limit=ROUNDS_AT_ONCE, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )


def serve_nightly(config_path: str, cron: str, timezone: str = "UTC") -> None:
    """Serve `flywheel/nightly`: one more round each time the cron fires, one at a time.

    Blocks until stopped; on Ctrl-C or SIGTERM the deployment is paused.
    """
    quiet_prefect_defaults()
    require_prefect_server()
    from flywheel.flows.flywheel_flow import flywheel

    try:
        flywheel.serve(
            name=DEPLOYMENT_NAME,
            schedule=nightly_schedule(cron, timezone),
            global_limit=one_round_at_a_time(),
            parameters={"config_path": str(Path(config_path).resolve()), "one_more": True},
            description="one more flywheel round: battle, judge, mine, train, A/B, promote",
            tags=["flywheel"],
            paused=False,  # a schedule paused by the last shutdown runs again
        )
    finally:
        pause_nightly()


def pause_nightly() -> None:
    """Pause the served deployment, which also deletes its not yet started scheduled runs.

    Prefect's own pause on shutdown does not happen on SIGTERM (its handler exits at once).
    """
    from prefect.client.orchestration import get_client

    name = f"flywheel/{DEPLOYMENT_NAME}"
    try:
        with get_client(sync_client=True) as client:
            client.pause_deployment(client.read_deployment_by_name(name).id)
    except Exception as e:
        print(
            f"flywheel serve: could not pause {name} ({type(e).__name__}: {e}); pause it "
            f"in the UI or with `prefect deployment pause {name}`",
            file=sys.stderr,
        )
        return
    print(
        f"flywheel serve: stopped; {name} is paused (its scheduled runs are deleted) until "
        "the next `flywheel serve`",
        file=sys.stderr,
    )
