"""The control socket of a running node: a Unix socket only its user can open.

One JSON request per connection (a line), one JSON answer (a line); ``logs`` streams one
event per line until the client goes away. Requests run inside the node's nursery.

Every client is treated as hostile: the request must arrive within the client timeout,
be strict JSON (no ``NaN``/``Infinity``), name a known command and only that command's
arguments, each of the declared type and range (see :data:`RANGES` and :data:`CHOICES`);
whatever the handler returns is made strict JSON by :func:`jsonable`, and any failure is
one ``{"ok": false, "error": ...}`` line for that client alone.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import socket as stdlib_socket
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import msgpack
import trio

from airssys_actors import Node, Pid
from airssys_actors.faults import KINDS as FAULT_KINDS
from supervisors import SupervisorRef

from .serving import ClientLimits, send_within, serve_clients

MAX_REQUEST = 1 << 20
#: Replies nested deeper than this are refused for that request (JSON encoders and
#: decoders recurse; msgpack allows 1024 levels, Python's stack about 1000 frames).
MAX_DEPTH = 256
#: Events a ``logs`` stream may have waiting for a slow client before the oldest are dropped.
LOGS_BACKLOG = 1000
#: The longest ``call`` timeout a client may ask for, in seconds.
MAX_CALL_TIMEOUT = 3600.0
#: Commands that run to the end even when their client goes away (stopping a deployment
#: half-way is worse than finishing it unobserved).
RUN_TO_COMPLETION = frozenset({"deploy"})


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


# ---------------------------------------------------------------------------------------
# Replies as strict JSON


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as a strict-JSON-safe value (what ``json.dumps(..., allow_nan=False)``
    accepts), losing nothing a guest can send:

    * bytes: a str when they are UTF-8, else ``{"bytes": "<hex>"}``;
    * NaN and infinities: ``{"float": "nan" | "inf" | "-inf"}``;
    * msgpack Timestamp: ``{"timestamp": {"seconds": s, "nanoseconds": n}}``;
    * other msgpack extension types: ``{"ext": code, "data": "<hex>"}``;
    * map keys that are not str: as their JSON text (``1`` -> ``"1"``, ``None`` ->
      ``"null"``, bytes as above); when two keys would collide that way, the map is
      ``{"map": [[key, value], ...]}`` instead;
    * pids and other host objects: their text.

    Raises :class:`ControlError` for values nested deeper than :data:`MAX_DEPTH`.
    """
    if depth > MAX_DEPTH:
        raise ControlError(f"reply nested deeper than {MAX_DEPTH} levels: cannot be shown as JSON")
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            return data.decode()
        except UnicodeDecodeError:
            return {"bytes": data.hex()}
    if isinstance(value, msgpack.Timestamp):
        return {"timestamp": {"seconds": value.seconds, "nanoseconds": value.nanoseconds}}
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "data": bytes(value.data).hex()}
    if isinstance(value, Pid):
        return str(value)
    if isinstance(value, dict):
        keys = [_key(k, depth + 1) for k in value]
        values = [jsonable(v, depth + 1) for v in value.values()]
        if len(set(keys)) == len(keys):
            return dict(zip(keys, values, strict=True))
        return {"map": [[jsonable(k, depth + 2), v] for k, v in zip(value, values, strict=True)]}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    return str(value)


def _key(key: Any, depth: int) -> str:
    if isinstance(key, str):
        return key
    rendered = jsonable(key, depth)
    if isinstance(rendered, str) and isinstance(key, (bytes, bytearray, memoryview)):
        return rendered
    return json.dumps(rendered, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """One line of strict JSON (ASCII only: no control character reaches a terminal)."""
    return json.dumps(value, allow_nan=False, ensure_ascii=True).encode() + b"\n"


# ---------------------------------------------------------------------------------------
# Requests and their arguments


#: Ranges of numeric arguments, by (command, argument): (low, high, low is exclusive).
RANGES: dict[tuple[str, str], tuple[float, float, bool]] = {
    ("call", "timeout"): (0, MAX_CALL_TIMEOUT, True),
    ("inject", "seconds"): (0, 3600, False),
    ("inject", "count"): (1, 1_000_000, False),
    ("deploy", "canary"): (0, 100_000, False),
    ("logs", "history"): (0, 1_000_000, False),
}
#: Allowed values of text arguments, by (command, argument).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("deploy", "strategy"): ("atomic", "rolling"),
    ("inject", "fault"): tuple(FAULT_KINDS),
}


@attrs.frozen
class Argument:
    """One argument of a command, as its handler declares it."""

    command: str
    name: str
    kind: str
    """``str``, ``int``, ``float``, ``bool`` or ``Any`` (any JSON value)."""
    nullable: bool
    required: bool

    def check(self, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        where = f"{self.command}: argument {self.name!r}"
        if self.kind == "Any":
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ControlError(f"{where} must be true or false, got {_short(value)}")
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise ControlError(f"{where} must be a string, got {_short(value)}")
            choices = CHOICES.get((self.command, self.name))
            if choices is not None and value not in choices:
                raise ControlError(f"{where} must be one of {', '.join(choices)}, got {_short(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                self.kind == "int" and not isinstance(value, int)):
            raise ControlError(f"{where} must be {'an integer' if self.kind == 'int' else 'a number'}, "
                               f"got {_short(value)}")
        if not math.isfinite(value):
            raise ControlError(f"{where} must be a finite number, got {_short(value)}")
        low, high, exclusive = RANGES.get((self.command, self.name), (-math.inf, math.inf, False))
        if value > high or value < low or (exclusive and value == low):
            raise ControlError(f"{where} must be {'>' if exclusive else '>='} {_number(low)} and <= {_number(high)}, "
                               f"got {_short(value)}")
        return float(value) if self.kind == "float" else value


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _short(value: Any) -> str:
    text = json.dumps(value, allow_nan=True) if isinstance(value, (int, float, str, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def arguments(command: str, handler: Callable[..., Any]) -> dict[str, Argument]:
    """The arguments of ``handler`` (after its server), from its signature and annotations."""
    out = {}
    for parameter in list(inspect.signature(handler).parameters.values())[1:]:
        annotation = parameter.annotation
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "Any")
        parts = [p.strip() for p in text.split("|")]
        nullable = "None" in parts or parameter.default is None
        kinds = [p for p in parts if p != "None"]
        kind = kinds[0] if len(kinds) == 1 and kinds[0] in ("str", "int", "float", "bool") else "Any"
        out[parameter.name] = Argument(command, parameter.name, kind, nullable,
                                       parameter.default is inspect.Parameter.empty)
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """``(command, args)`` of one request line, or :class:`ControlError` naming what is wrong."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ControlError("request is not UTF-8 text") from None
    try:
        request = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise ControlError("request is nested too deeply") from None
    except ValueError as exc:
        raise ControlError(f"request is not strict JSON: {str(exc)[:200]}") from None
    if not isinstance(request, dict):
        raise ControlError('request must be a JSON object {"cmd": COMMAND, "args": {...}}')
    unknown = sorted(set(request) - {"cmd", "args"})
    if unknown:
        raise ControlError(f"unknown request field {_short(unknown[0])}: a request has only cmd and args")
    command = request.get("cmd")
    if not isinstance(command, str):
        raise ControlError(f"field 'cmd' must be a command name (a string), got {_short(command)}")
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise ControlError(f"field 'args' must be an object, got {_short(args)}")
    return command, args


# ---------------------------------------------------------------------------------------
# The server


class ControlServer:
    def __init__(self, node: Node, root: SupervisorRef, path: Path, handlers: dict[str, Any],
                 limits: ClientLimits | None = None) -> None:
        self.node = node
        self.root = root
        self.path = path
        self.handlers = handlers
        self.limits = limits or ClientLimits()
        self.logs_backlog = LOGS_BACKLOG
        self.commands = {name: arguments(name, handler) for name, handler in handlers.items()}

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
        listener.listen(128)
        try:
            task_status.started()
            await serve_clients(trio.SocketListener(listener), self._serve_one, self._refuse, self.limits,
                                "control socket")
        finally:
            listener.close()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    async def _refuse(self, stream: trio.SocketStream) -> None:
        error = f"too many clients: the node serves at most {self.limits.max_clients} at once; try again later"
        await send_within(stream, dumps({"ok": False, "error": error}), self.limits)

    async def _serve_one(self, stream: trio.SocketStream) -> None:
        try:
            with trio.fail_after(self.limits.timeout):
                line, extra = await _read_line(stream)
            if extra:
                raise ControlError("one request per connection: nothing may follow the request line")
            command, args = parse_request(line)
            handler, checked = self._check(command, args)
        except trio.TooSlowError:
            await self._error(stream, ControlError(
                f"no complete request line within {self.limits.timeout:g} s (the client timeout)"))
            return
        except ControlError as exc:
            await self._error(stream, exc)
            return
        async with trio.open_nursery() as nursery:
            if command not in RUN_TO_COMPLETION:
                nursery.start_soon(_cancel_on_hangup, stream, nursery.cancel_scope)
            try:
                await self._answer(stream, handler, checked)
            finally:
                nursery.cancel_scope.cancel()

    def _check(self, command: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        handler = self.handlers.get(command)
        if handler is None:
            raise ControlError(f"unknown command {_short(command)}; the commands are {', '.join(sorted(self.handlers))}")
        declared = self.commands[command]
        for name in args:
            if name not in declared:
                raise ControlError(f"{command}: unknown argument {_short(name)}; "
                                   f"it takes {', '.join(declared) or 'none'}")
        for argument in declared.values():
            if argument.required and argument.name not in args:
                raise ControlError(f"{command}: missing argument {argument.name!r}")
        return handler, {name: declared[name].check(value) for name, value in args.items()}

    async def _answer(self, stream: trio.SocketStream, handler: Any, args: dict[str, Any]) -> None:
        # Failures of the handler or of its result are an error line for this client;
        # failures to send (the client went away or stopped reading) end its connection.
        try:
            result = handler(self, **args)
            if hasattr(result, "__aiter__"):
                await self._stream(stream, result)
                return
            answer = dumps({"ok": True, "result": jsonable(await result)})
        except Exception as exc:  # every refusal is one line for the user
            answer = dumps({"ok": False, "error": _one_line(exc)})
        await send_within(stream, answer, self.limits)

    async def _stream(self, stream: trio.SocketStream, items: Any) -> None:
        async with contextlib.aclosing(items) if hasattr(items, "aclose") else contextlib.nullcontext(items):
            iterator = aiter(items)
            while True:
                try:
                    line = dumps(jsonable(await anext(iterator)))
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    await send_within(stream, dumps({"ok": False, "error": _one_line(exc)}), self.limits)
                    return
                # A reader that takes no line within the timeout is disconnected: what
                # waits for it is only the bounded subscription (``logs_backlog``).
                await send_within(stream, line, self.limits)

    async def _error(self, stream: trio.SocketStream, exc: Exception) -> None:
        await send_within(stream, dumps({"ok": False, "error": _one_line(exc)}), self.limits)


async def _cancel_on_hangup(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
    """Cancel the running request once its client closes or resets the connection, or
    sends anything more (one request per connection): nobody would read the answer, and a
    ``logs --follow`` or a long ``call`` must not outlive its client."""
    try:
        await stream.receive_some(1)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


def _one_line(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if len(message) > 4096:
        message = message[:4096] + f"... ({len(message)} characters)"
    return message if isinstance(exc, ControlError) else f"{type(exc).__name__}: {message}"


async def _read_line(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """The request line (without its newline) and whatever came after it."""
    data = b""
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            if data:
                raise ControlError("incomplete request: the connection closed before the end of the line")
            raise trio.ClosedResourceError  # connected and left: nothing to answer
        start = len(data)
        data += chunk
        end = data.find(b"\n", start)
        if end >= 0:
            if end > MAX_REQUEST:
                raise ControlError(f"request too large: the limit is {MAX_REQUEST} bytes")
            return data[:end], data[end + 1:]
        if len(data) > MAX_REQUEST:
            raise ControlError(f"request too large: the limit is {MAX_REQUEST} bytes")


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
        await stream.send_all(json.dumps({"cmd": command, "args": args}, allow_nan=False).encode() + b"\n")
        buffer = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield json.loads(line)
