"""The nightly schedule: serve the flywheel deployment to a running Prefect server.

The temporary server Prefect starts for ad-hoc runs cannot schedule; start one with
`prefect server start` and point PREFECT_API_URL at it (http://127.0.0.1:4200/api).
"""

from __future__ import annotations

import os
from pathlib import Path

from flywheel.flows.flywheel_flow import flywheel
from flywheel.flows.prefect_env import quiet_prefect_defaults

DEPLOYMENT_NAME = "nightly"


def require_prefect_server() -> str:
    api_url = os.environ.get("PREFECT_API_URL", "")
    if not api_url:
        raise RuntimeError(
            "PREFECT_API_URL is not set, and Prefect's temporary server cannot run schedules. "
            "Fix: start a server with `prefect server start` (UI at http://127.0.0.1:4200), then "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api and run `flywheel serve` again."
        )
    return api_url


def serve_nightly(config_path: str, cron: str, timezone: str = "UTC") -> None:
    """Serve the `flywheel/nightly` deployment: one more round each time the cron fires."""
    quiet_prefect_defaults()
    require_prefect_server()
    flywheel.serve(
        name=DEPLOYMENT_NAME,
        cron=cron,
        parameters={"config_path": str(Path(config_path).resolve()), "one_more": True},
        description="one more flywheel round: battle, judge, mine, train, A/B, promote",
        tags=["flywheel"],
    )
