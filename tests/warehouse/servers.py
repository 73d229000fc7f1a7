"""Real servers for the DuckLake tests, started by the tests on 127.0.0.1 and stopped after.

`PostgresServer`: Debian's `postgresql` binaries (`initdb`, `pg_ctl`), a cluster in a temporary
folder on a free port, password authentication over TCP. Postgres binds a port it is given
(it cannot take a bound socket), so a port another process took after it was picked is picked
again. Postgres refuses to run as root, so
as root the binaries run as the `postgres` user. Without the binaries the tests are skipped
with the reason, except under CI (`CI` set), where `.ci/run` installs them and a missing
binary fails.

`S3Server`: moto's server mode (an S3-compatible HTTP server) with one bucket, on a port it
binds itself (port 0) and reports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "flywheel"
PG_PASSWORD = "flywheel-test-password"
S3_KEY_ID = "flywheel-test-key"
S3_SECRET = "flywheel-test-secret"
PG_PORT_TRIES = 5  # picks of a free port before a cluster that cannot bind one is an error
PORT_TAKEN = b"Address already in use"  # in postgres's log when its port was taken


def free_port() -> int:
    """A port free now; another process may take it before the caller binds it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of `initdb` and `pg_ctl`: on PATH, or Debian's /usr/lib/postgresql/<v>/bin."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    as_user: list[str]  # prefix running a command as the cluster's owner
    port: int = 0  # set once the cluster listens

    def run(self, *command: str) -> None:
        env = os.environ | {"PGPASSWORD": PG_PASSWORD}
        done = subprocess.run(
            [*self.as_user, str(self.bin_dir / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.folder,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def create_database(self, name: str) -> str:
        """A new database; the catalog setting for it (the password comes from PGPASSWORD)."""
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, name)
        return f"postgres:host=127.0.0.1 port={self.port} dbname={name} user={PG_USER}"


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(
                "postgresql is not installed; .ci/run installs it (apt-get install postgresql)"
            )
        pytest.skip("postgresql binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bin_dir, folder, as_user)
    password_file = folder / "password"
    password_file.write_text(PG_PASSWORD + "\n")
    if as_user:
        shutil.chown(password_file, "postgres")
    data = folder / "data"
    server.run(
        "initdb", "-D", str(data), "-U", PG_USER, "--pwfile", str(password_file),
        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
    )  # fmt: skip
    start_on_a_free_port(server, data)
    try:
        yield server
    finally:
        server.run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def start_on_a_free_port(server: PostgresServer, data: Path) -> None:
    """Start the cluster in `data` on a free port, picking another while the one picked was
    taken before postgres bound it; `server.port` is the port it listens on."""
    log = server.folder / "log"
    for _ in range(PG_PORT_TRIES):
        logged = log.stat().st_size if log.exists() else 0
        server.port = free_port()
        options = f"-p {server.port} -k {server.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            server.run("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
            return
        except RuntimeError:
            if PORT_TAKEN not in log.read_bytes()[logged:]:
                raise
    raise RuntimeError(f"postgres found no free port in {PG_PORT_TRIES} tries (see {log})")


@dataclass
class S3Server:
    endpoint_url: str
    bucket: str

    def object_keys(self) -> list[str]:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        listing = client.list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listing.get("Contents", [])]


@contextmanager
def s3_server() -> Iterator[S3Server]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        ).create_bucket(Bucket="lake")
        yield S3Server(endpoint, "lake")
    finally:
        server.stop()
