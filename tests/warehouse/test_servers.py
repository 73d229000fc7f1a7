"""The test servers start on a port nobody else holds, also when the first pick was taken."""

from __future__ import annotations

import socket

import pytest

from tests.warehouse import servers


def test_postgres_picks_another_port_when_the_first_was_taken_before_it_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        picks = iter([taken_port])
        pick_free_port = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: next(picks, None) or pick_free_port())
        with servers.postgres_server() as postgres:
            assert postgres.port != taken_port
            postgres.create_database("reached")


def test_s3_listens_on_the_port_it_bound_itself() -> None:
    with servers.s3_server() as s3:
        assert not s3.endpoint_url.endswith(":0")
        # moto keeps its buckets per process, so earlier tests' objects may be listed too:
        # what matters is that the port it reports answers
        assert isinstance(s3.object_keys(), list)
