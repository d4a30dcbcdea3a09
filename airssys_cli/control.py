"""The control socket of a running node: a Unix socket only its user can open.

One JSON request per connection (a line), one JSON answer (a line); ``logs`` streams one
event per line until the client goes away. Requests run inside the node's nursery.
"""

from __future__ import annotations

import json
import os
import socket as stdlib_socket
import stat
from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator

import trio

from airssys_actors import Node, Pid
from supervisors import SupervisorRef

MAX_REQUEST = 1 << 20


def default_socket() -> Path:
    """``$AIRSSYS_SOCKET``, else ``$XDG_RUNTIME_DIR/airssys/control.sock``, else
    ``~/.airssys/control.sock``."""
    if os.environ.get("AIRSSYS_SOCKET"):
        return Path(os.environ["AIRSSYS_SOCKET"])
    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) / "airssys" if base else Path.home() / ".airssys"
    return root / "control.sock"


class ControlError(Exception):
    """A request the node refused; the message is shown to the user as is."""


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"bytes": value.hex()}
    if isinstance(value, Pid):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class ControlServer:
    def __init__(self, node: Node, root: SupervisorRef, path: Path, handlers: dict[str, Any]) -> None:
        self.node = node
        self.root = root
        self.path = path
        self.handlers = handlers

    async def serve(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        if not self.path.parent.exists():
            # A directory we create is ours alone; an existing one is left as it is (the
            # socket file itself is 0600 either way).
            self.path.parent.mkdir(parents=True, mode=stat.S_IRWXU)
        if self.path.exists():
            if _is_live(self.path):
                raise ControlError(f"another node is already listening on {self.path}")
            self.path.unlink()
        listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        old_umask = os.umask(0o077)  # the socket file is created readable by its user only
        try:
            await listener.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
        listener.listen(16)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    sock, _ = await listener.accept()
                    nursery.start_soon(self._serve_one, trio.SocketStream(sock))
        finally:
            listener.close()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                request = json.loads(await _read_line(stream))
                command = request.get("cmd")
                handler = self.handlers.get(command)
                if handler is None:
                    raise ControlError(f"unknown command {command!r}")
                result = handler(self, **request.get("args", {}))
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        await stream.send_all(json.dumps(jsonable(item)).encode() + b"\n")
                    return
                answer = {"ok": True, "result": jsonable(await result)}
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            except Exception as exc:  # every refusal is one line for the user
                answer = {"ok": False, "error": _one_line(exc)}
            try:
                await stream.send_all(json.dumps(answer).encode() + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return message if isinstance(exc, ControlError) else f"{type(exc).__name__}: {message}"


async def _read_line(stream: trio.SocketStream) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ControlError("request too large")
    return data


def _is_live(path: Path) -> bool:
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


async def request(path: Path, command: str, args: dict[str, Any]) -> AsyncIterator[Any]:
    """Send one request; yields the answer (or each streamed item)."""
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError as exc:
        raise ControlError(f"no node is listening on {path} ({exc.strerror}); start one with `airssys run TREE.py`") from None
    async with stream:
        await stream.send_all(json.dumps({"cmd": command, "args": args}).encode() + b"\n")
        buffer = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield json.loads(line)
