"""Hostile clients of the control socket and the metrics port: raw sockets, strict JSON,
waits under deadlines (never sleeps as timing assertions)."""

from __future__ import annotations

import json
import select
import socket as socketlib
import struct
import time
from pathlib import Path
from typing import Any

from .conftest import RunningNode


def strict_json(line: bytes) -> Any:
    """``line`` parsed as strict JSON: NaN, Infinity and -Infinity are refused."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"not strict JSON ({name}): {line[:200]!r}")

    return json.loads(line, parse_constant=refuse)


def connect(path: Path, timeout: float = 15) -> socketlib.socket:
    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def read_to_end(sock: socketlib.socket, deadline: float = 15) -> bytes:
    """Everything the peer sends until it closes the connection (fails after ``deadline``)."""
    end = time.monotonic() + deadline
    data = b""
    while True:
        left = end - time.monotonic()
        assert left > 0, f"the peer did not close the connection within {deadline} s; got {data[:200]!r}"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def exchange(path: Path, data: bytes, deadline: float = 15) -> list[bytes]:
    """Send ``data`` on a fresh connection; the lines the node answers before closing it."""
    with connect(path) as sock:
        sock.sendall(data)
        answer = read_to_end(sock, deadline)
    lines = answer.split(b"\n")
    assert lines[-1] == b"", f"answer does not end with a newline: {answer[-200:]!r}"
    return lines[:-1]


def ask(path: Path, command: str, **args: Any) -> dict[str, Any]:
    """One request, its one strict-JSON answer."""
    lines = exchange(path, json.dumps({"cmd": command, "args": args}).encode() + b"\n")
    assert len(lines) == 1, lines
    return strict_json(lines[0])


def refused(path: Path, data: bytes) -> str:
    """The error of the one answer line to ``data``."""
    lines = exchange(path, data)
    assert len(lines) == 1, lines
    answer = strict_json(lines[0])
    assert answer["ok"] is False, answer
    return answer["error"]


def reset(sock: socketlib.socket) -> None:
    """Close with an RST instead of a FIN."""
    sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def closed_by_peer(sock: socketlib.socket) -> bool:
    """Whether the peer has closed ``sock`` (without reading from it)."""
    poller = select.poll()
    poller.register(sock, select.POLLHUP | getattr(select, "POLLRDHUP", 0))
    return bool(poller.poll(0))


def wait_closed_by_peer(sock: socketlib.socket, deadline: float) -> float:
    """Seconds until the peer closed ``sock``, without reading from it."""
    start = time.monotonic()
    poller = select.poll()
    poller.register(sock, select.POLLHUP | getattr(select, "POLLRDHUP", 0))
    while time.monotonic() - start < deadline:
        if poller.poll(100):
            return time.monotonic() - start
    raise AssertionError(f"the node did not close the connection within {deadline} s")


def assert_serves(node: RunningNode, deadline: float = 20) -> None:
    """The node is alive and ``echo`` answers a call through the control socket (retried
    until ``deadline``: a slot freed by a closed client is released asynchronously)."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        node.assert_alive()
        try:
            last = ask(node.socket, "call", to="echo", message="still serving")
        except (OSError, AssertionError) as exc:
            last = exc
        else:
            if last == {"ok": True, "result": "still serving"}:
                return
        time.sleep(0.1)
    raise AssertionError(f"the node does not answer a call any more: {last!r}")
