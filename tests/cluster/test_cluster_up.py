"""`airssys cluster up`: a real nats-server with JetStream that nodes (here: nats-py) can
reach, stopped by its pid when the command gets SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from airssys_cli.natsserver import free_port

from ..conftest import ROOT


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0): it has exited once its state is Z.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def _jetstream_roundtrip(url: str) -> bytes:
    import nats

    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        kv = await nc.jetstream().create_key_value(bucket="UP_CHECK")
        await kv.put("k", b"v")
        return (await kv.get("k")).value
    finally:
        await nc.close()


def test_cluster_up_serves_jetstream_and_stops_the_server_on_sigterm(tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "airssys_cli", "cluster", "up", "--port", str(port),
               "--store", str(tmp_path / "store"), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    server_pid = None
    try:
        line = process.stdout.readline()
        info = json.loads(line)
        server_pid = info["pid"]
        assert info["url"] == f"nats://127.0.0.1:{port}"
        assert asyncio.run(asyncio.wait_for(_jetstream_roundtrip(info["url"]), 10)) == b"v"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        deadline = time.monotonic() + 5
        while not _gone(server_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gone(server_pid)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        if server_pid is not None and not _gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_cluster_up_on_a_port_in_use_says_so(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "airssys_cli", "cluster", "up", "--port", str(port),
                                 "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=30,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert "nats-server exited" in result.stderr and "address already in use" in result.stderr.lower()


@pytest.mark.parametrize("port", ["-1", "65536", "abc", "4.5"])
def test_cluster_up_refuses_a_bad_port(port):
    result = subprocess.run([sys.executable, "-m", "airssys_cli", "cluster", "up", "--port", port],
                            capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert "--port" in result.stderr
