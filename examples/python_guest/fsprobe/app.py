"""fsprobe: a Python guest that tries to use the host through WASI (world airssys:actor/process).

Unlike kvstore it is built WITHOUT ``--stub-wasi`` (the ``WASI`` file beside this one
tells scripts/build_python_guest.py so): the component imports the WASI 0.2 interfaces
and every file or environment access below is a real WASI call. What it can reach is
exactly what the process's ``Capabilities(wasi=WasiGrant(...))`` grants; without a grant
it gets an empty WASI context (no directories, no environment, no network). The
isolation and hostile tests (tests/isolation/test_wasi.py, tests/hostile/test_wasi_escape.py)
use it to check that a guest sees no more of the host than it was given.

Calls (the reply is the msgpack of the result):

    ["read", path]          -> the file's text, or ["error", str(exc)]
    ["write", path, text]   -> "ok" (the file is created or replaced), or ["error", ...]
    ["list", path]          -> the sorted names in the directory, or ["error", ...]
    ["env", name]           -> os.environ.get(name) (nil when unset)
    "environ"               -> every variable name the guest sees, sorted
    ["connect", host, port] -> "connected" if a TCP connection opened, else ["error", ...]
    ["listen", host, port]  -> "listening" if a TCP socket could listen there, else ["error", ...]
    ["resolve", name]       -> the addresses a name lookup gave, or ["error", ...]
    ["symlink", target, at] -> "ok" once the symlink ``at`` -> ``target`` exists, or ["error", ...]
    ["readlink", path]      -> the symlink's target, or ["error", ...]
    ["rename", old, new]    -> "ok", or ["error", ...]
    ["mkdir", path]         -> "ok", or ["error", ...]
    ["sleep", seconds]      -> "slept" after time.sleep(seconds) (the node refuses WASI sleeps: a trap)
    "stdin"                 -> what reading all of stdin gave (text), or ["error", ...]
    ["print", text]         -> "ok" after printing text to stdout and stderr
    "clock"                 -> [time.time(), time.monotonic()]
    "random"                -> 16 bytes from os.urandom
    ["exit", code]          -> calls WASI exit (os._exit(code)): the call never returns
    "ping"                  -> "pong"

Anything else is err("bad request: ..."); an OSError is answered, not raised, so that a
denied path does not end the process. Casts and other envelope kinds are ignored.
init(args) accepts anything; snapshot() is empty and upgrade() always succeeds.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Envelope, Kind_Call

import minipack


def _error(exc: BaseException) -> list:
    return ["error", f"{type(exc).__name__}: {exc}"]


def _os_call(fn: Any, *args: str) -> Any:
    try:
        fn(*args)
        return "ok"
    except OSError as exc:
        return _error(exc)


def _call(request: Any) -> Any:
    if request == "ping":
        return "pong"
    if request == "environ":
        return sorted(os.environ)
    if request == "stdin":
        try:
            return sys.stdin.read()
        except Exception as exc:
            return _error(exc)
    if request == "clock":
        return [time.time(), time.monotonic()]
    if request == "random":
        return os.urandom(16)
    if isinstance(request, list) and request and isinstance(request[0], str):
        op, args = request[0], request[1:]
        if op == "read" and len(args) == 1 and isinstance(args[0], str):
            try:
                with open(args[0], encoding="utf-8") as f:
                    return f.read()
            except (OSError, UnicodeDecodeError) as exc:
                return _error(exc)
        if op == "write" and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str):
            try:
                with open(args[0], "w", encoding="utf-8") as f:
                    f.write(args[1])
                return "ok"
            except OSError as exc:
                return _error(exc)
        if op == "list" and len(args) == 1 and isinstance(args[0], str):
            try:
                return sorted(os.listdir(args[0]))
            except OSError as exc:
                return _error(exc)
        if op == "env" and len(args) == 1 and isinstance(args[0], str):
            return os.environ.get(args[0])
        if op == "connect" and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int):
            try:
                import socket

                with socket.create_connection((args[0], args[1]), timeout=2):
                    return "connected"
            except Exception as exc:  # ImportError too: no socket support at all is a no
                return _error(exc)
        if op == "listen" and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int):
            try:
                import socket

                with socket.socket() as server:
                    server.bind((args[0], args[1]))
                    server.listen()
                    return "listening"
            except Exception as exc:
                return _error(exc)
        if op == "resolve" and len(args) == 1 and isinstance(args[0], str):
            try:
                import socket

                return sorted({info[4][0] for info in socket.getaddrinfo(args[0], 80)})
            except Exception as exc:
                return _error(exc)
        if op == "symlink" and len(args) == 2 and all(isinstance(a, str) for a in args):
            return _os_call(os.symlink, args[0], args[1])
        if op == "readlink" and len(args) == 1 and isinstance(args[0], str):
            try:
                return os.readlink(args[0])
            except OSError as exc:
                return _error(exc)
        if op == "rename" and len(args) == 2 and all(isinstance(a, str) for a in args):
            return _os_call(os.rename, args[0], args[1])
        if op == "mkdir" and len(args) == 1 and isinstance(args[0], str):
            return _os_call(os.mkdir, args[0])
        if op == "sleep" and len(args) == 1 and isinstance(args[0], (int, float)):
            time.sleep(args[0])
            return "slept"
        if op == "print" and len(args) == 1 and isinstance(args[0], str):
            print(args[0])
            print(args[0], file=sys.stderr)
            return "ok"
        if op == "exit" and len(args) == 1 and isinstance(args[0], int):
            os._exit(args[0])
    raise Err(f"bad request: {request!r}"[:200])


class WitWorld(wit_world.WitWorld):
    def init(self, args: bytes) -> None:
        return None

    def handle(self, msg: Envelope) -> bytes | None:
        if not isinstance(msg.kind, Kind_Call):
            return None
        try:
            request = minipack.unpackb(msg.payload)
        except minipack.MsgpackError as exc:
            raise Err(f"bad request: {exc}") from None
        return minipack.packb(_call(request))

    def snapshot(self) -> bytes:
        return b""

    def upgrade(self, from_version: str, state: bytes) -> None:
        return None
