"""Helpers for the multi-node tests: node OS processes (``tests/cluster/nodeproc.py``),
stopped by pid, and waiting on what the cluster sees."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from airssys_actors import Node
from airssys_actors._clusterconfig import ClusterConfig

ROOT = Path(__file__).resolve().parents[2]
#: Test timings: detection within about half a second.
TIMINGS = {"heartbeat": 0.1, "suspect_after": 0.25, "down_after": 0.5}


def config(url: str, **overrides: Any) -> ClusterConfig:
    return ClusterConfig(url, **{**TIMINGS, **overrides})


class NodeProcess:
    """``python -m tests.cluster.nodeproc`` as a child process."""

    def __init__(self, name: str, url: str, log_dir: Path, **options: Any) -> None:
        self.name = name
        self.url = url
        self.log_path = log_dir / f"node-{name}.log"
        self.options = {**TIMINGS, **options}
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: dict[str, str] = {}

    def start(self, timeout: float = 30.0) -> NodeProcess:
        args = [sys.executable, "-m", "tests.cluster.nodeproc", "--name", self.name, "--cluster", self.url]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""  # type: ignore[union-attr]
        if not line:
            self.kill()
            raise RuntimeError(f"node {self.name} did not start: {self.log_path.read_text()[-2000:]}")
        self.pids = json.loads(line)
        return self

    @property
    def node_id(self) -> str:
        return self.pids["node"]

    @property
    def os_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)


async def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.02) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(step)


async def wait_up(node: Node, *names: str, timeout: float = 10.0) -> None:
    for name in names:
        await node.wait_for_node(name, timeout)
