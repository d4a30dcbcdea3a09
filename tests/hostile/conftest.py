"""The standing hostile corpus: each module attacks one class of input and asserts the
property that must hold afterwards (the node still serves, the offender alone ends with a
named reason or the client alone gets an error naming the field, memory stays bounded,
nothing is silently lost). Hostile clients speak to the real control socket and metrics
port of a real `airssys run` node started here as a subprocess."""

from __future__ import annotations

import os
import signal
import socket as socketlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from ..conftest import COMPONENTS, ROOT

AIRSSYS = [sys.executable, "-m", "airssys_cli"]

TREE = f"""
from supervisors import Supervisor, Child
tree = Supervisor("root", children=[
    Child("counter", {str(COMPONENTS / "counter.wat")!r}, args={{"start": 0}}, name="counter"),
    Child("echo", {str(COMPONENTS / "echo.wat")!r}, name="echo"),
])
"""


def free_port() -> int:
    with socketlib.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_of(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@attrs.frozen
class RunningNode:
    """An `airssys run` subprocess with its control socket (and metrics port, if any)."""

    proc: subprocess.Popen[str]
    socket: Path
    env: dict[str, str]
    metrics_port: int | None

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*AIRSSYS, *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout, cwd=ROOT)

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"the node exited: {self.proc.communicate(timeout=5)}"


def start_node(tmp_path: Path, text: str = TREE, *extra: str, metrics: bool = False) -> RunningNode:
    """`airssys run` on a tree file with ``text``, once its control socket (and metrics
    port) answer."""
    tree = tmp_path / "tree.py"
    tree.write_text(text)
    socket = tmp_path / "sock" / "control.sock"
    env = {**os.environ, "AIRSSYS_SOCKET": str(socket), "AIRSSYS_TRACK_MEMORY": "0"}
    port = free_port() if metrics else None
    args = [*extra, *(["--metrics", f"127.0.0.1:{port}"] if port else [])]
    proc = subprocess.Popen([*AIRSSYS, "run", str(tree), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not socket.exists() or (port and not _accepts(port)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"node did not start: {proc.communicate()[1]}")
        time.sleep(0.05)
    return RunningNode(proc, socket, env, port)


def _accepts(port: int) -> bool:
    try:
        socketlib.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def stop_node(node: RunningNode) -> None:
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGINT)
        try:
            node.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()


@pytest.fixture
def running_node(tmp_path: Path) -> Iterator[RunningNode]:
    """A real node with the small tree above, a control socket and a metrics port."""
    node = start_node(tmp_path, metrics=True)
    yield node
    stop_node(node)
