"""Cluster fixtures: a real nats-server with JetStream per test, on a free loopback port,
its store in tmp_path, stopped by pid at the end even when the test fails."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from airssys_cli.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path) -> Iterator[NatsServer]:
    server = NatsServer().start(tmp_path / "nats")
    try:
        yield server
    finally:
        pid = server.pid
        server.stop()
        if pid is not None:  # belt and braces: never leave a server behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url
