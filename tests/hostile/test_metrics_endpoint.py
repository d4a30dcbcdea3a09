"""Hostile clients of the metrics port: garbage HTTP, slow and partial requests, header
floods, resets, too many connections. Each asserts that the client alone gets an HTTP
error or is disconnected, and that the node still serves calls and scrapes afterwards."""

from __future__ import annotations

import socket as socketlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from .clients import assert_serves, reset, wait_closed_by_peer
from .conftest import RunningNode, rss_of, start_node, stop_node

TIMEOUT = 2.0
CAP = 4


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = _start(tmp_path_factory)
    yield running
    stop_node(running)
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    # every failure was the client's alone: no handler raised, nothing reached the node's log
    assert "connection failed" not in stderr and "Traceback" not in stderr, stderr[-2000:]


def _start(tmp_path_factory: pytest.TempPathFactory) -> RunningNode:
    from .conftest import TREE

    return start_node(tmp_path_factory.mktemp("metrics"), TREE, "--client-timeout", str(TIMEOUT),
                      "--max-clients", str(CAP), metrics=True)


def open_http(node: RunningNode) -> socketlib.socket:
    assert node.metrics_port is not None
    sock = socketlib.create_connection(("127.0.0.1", node.metrics_port), timeout=15)
    return sock


def http(node: RunningNode, data: bytes, deadline: float = 15) -> bytes:
    """Send raw bytes; everything the node answers until it closes the connection."""
    with open_http(node) as sock:
        sock.sendall(data)
        answer = b""
        end = time.monotonic() + deadline
        while True:
            assert time.monotonic() < end, f"the node kept the connection open; got {answer[:200]!r}"
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return answer
            if not chunk:
                return answer
            answer += chunk


def scrape(node: RunningNode) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=15) as page:
        assert page.status == 200
        assert page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return page.read().decode()


def assert_scrapes_and_serves(node: RunningNode) -> None:
    assert_serves(node)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert "airssys_node_processes" in scrape(node)
            return
        except (OSError, urllib.error.HTTPError):
            # a slot freed by a closed client is released asynchronously
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.mark.parametrize(("data", "status"), [
    (b"garbage\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\n\r\n", b"400"),  # HTTP/1.1 needs a Host header
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 70_000, b"413"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Flood: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", b"417"),
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi", b"405"),
    (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"404"),
    (b"\x00\xff\x16\x03\x01" * 100, b"400"),  # e.g. a TLS hello
])
def test_bad_http_gets_an_error_status_and_the_node_serves_on(node: RunningNode, data: bytes, status: bytes) -> None:
    answer = http(node, data)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert_scrapes_and_serves(node)


def test_head_and_keep_alive(node: RunningNode) -> None:
    with open_http(node) as sock:
        sock.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest.startswith(b"HTTP/1.1 200")  # HEAD has no body
    assert b"airssys_node_processes" in rest


@pytest.mark.parametrize("partial", [b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"])
def test_a_slow_or_silent_client_is_disconnected_after_the_client_timeout(node: RunningNode, partial: bytes) -> None:
    with open_http(node) as sock:
        sock.sendall(partial)
        waited = wait_closed_by_peer(sock, deadline=30)
    assert waited >= TIMEOUT * 0.9
    assert_scrapes_and_serves(node)


def test_a_reset_mid_request_ends_that_connection_alone(node: RunningNode) -> None:
    for partial in (b"GET /met", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"):
        sock = open_http(node)
        sock.sendall(partial)
        reset(sock)
    assert_scrapes_and_serves(node)


def test_connections_beyond_the_cap_get_503_while_the_node_serves(node: RunningNode) -> None:
    holders = [open_http(node) for _ in range(CAP)]
    try:
        for sock in holders:  # each holds a slot: a request is on its way, byte by byte
            sock.sendall(b"G")
        answer = http(node, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert f"at most {CAP} at once".encode() in answer
        assert_serves(node)  # the control socket has a cap of its own
    finally:
        for sock in holders:
            sock.close()
    assert_scrapes_and_serves(node)


def test_a_flood_of_bad_requests_keeps_memory_bounded(node: RunningNode) -> None:
    before = rss_of(node.proc.pid)
    for i in range(300):
        http(node, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"j" * (i * 50 % 15_000) + b"\r\n\r\n\x00garbage")
    assert rss_of(node.proc.pid) - before < 64 << 20
    assert_scrapes_and_serves(node)


def test_the_metrics_port_survives_fd_exhaustion_and_serves_again(tmp_path) -> None:
    import os
    import resource

    from .conftest import TREE

    running = start_node(tmp_path, TREE, "--max-clients", "1000", "--client-timeout", "30", metrics=True)
    try:
        limit = 64
        resource.prlimit(running.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        clients = [open_http(running) for _ in range(120)]  # the listen backlog takes what accept cannot
        try:
            deadline = time.monotonic() + 20
            while len(os.listdir(f"/proc/{running.proc.pid}/fd")) < limit and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(os.listdir(f"/proc/{running.proc.pid}/fd")) >= limit  # accept now fails with EMFILE
            running.assert_alive()
        finally:
            for sock in clients:
                sock.close()
        assert_scrapes_and_serves(running)
    finally:
        stop_node(running)
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    assert "metrics: accept failed (EMFILE)" in stderr and "accepting again" in stderr, stderr[-2000:]
