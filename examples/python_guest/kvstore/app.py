"""kvstore: a key-value store process written in Python (world airssys:actor/process).

State is one dict, kept at module level (one component instance is one process, so
module globals are per process).
Payloads are msgpack, encoded and decoded with ``minipack`` (examples/python_guest/common, shared by the guests).

Calls (the reply is the msgpack of the result):

    ["put", key, value]   -> "ok"
    ["get", key]          -> the value, or nil
    ["delete", key]       -> true if the key existed
    "keys"                -> the keys, sorted
    "size"                -> the number of keys
    "ping"                -> "pong"
    "ping-later"          -> "pong", sent with host.reply (a deferred reply)
    "whoami"              -> this process's address (host.self)
    "log"                 -> logs "kv says hi" at level info, then "ok"
    "crash"               -> raises: logs the exception at level error, then the call traps
    "fail"                -> err("asked to fail")

Anything else, or a payload that is not msgpack, is err("bad request: ...").
Casts: ["put", key, value] stores; every other cast is ignored. Other envelope kinds
(reply, failed, down, exit, timer) are ignored.

init(args): nil, or a map {"data": {...}} whose dict preloads the store.
snapshot(): {"version": 1, "data": {...}}; upgrade() takes exactly that back.
"""

from __future__ import annotations

from typing import Any

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.types import Envelope, Kind_Call, Kind_Cast, Level

import minipack

#: The version tag written by snapshot() and required by upgrade().
SNAPSHOT_VERSION = 1

_data: dict = {}


def _key(key: Any) -> Any:
    """Keys decoded from msgpack arrays arrive as lists; store them as tuples."""
    try:
        key = minipack.hashable_key(key)
        hash(key)
    except TypeError:
        raise Err(f"bad request: unusable key of type {type(key).__name__}") from None
    return key


def _sort_rank(key: Any) -> tuple:
    # nil < bool < numbers < str < bin < arrays; within a rank, natural order.
    if key is None:
        return (0, 0)
    if isinstance(key, bool):
        return (1, key)
    if isinstance(key, (int, float)):
        return (2, key)
    if isinstance(key, str):
        return (3, key)
    if isinstance(key, bytes):
        return (4, key)
    return (5, minipack.packb(key))


def _sorted_keys() -> list:
    return sorted(_data, key=_sort_rank)


def _check_data(obj: Any) -> dict | None:
    """The dict of a {"data": {...}} map, or None when obj is not of that shape."""
    if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
        return obj["data"]
    return None


def _call(request: Any, call_id: int) -> bytes | None:
    """Answer one call: the msgpack reply, or None when it is answered with host.reply."""
    if isinstance(request, list) and request:
        op, args = request[0], request[1:]
        if op == "put" and len(args) == 2:
            _data[_key(args[0])] = args[1]
            return minipack.packb("ok")
        if op == "get" and len(args) == 1:
            return minipack.packb(_data.get(_key(args[0])))
        if op == "delete" and len(args) == 1:
            key = _key(args[0])
            existed = key in _data
            _data.pop(key, None)
            return minipack.packb(existed)
    elif request == "keys":
        return minipack.packb(_sorted_keys())
    elif request == "size":
        return minipack.packb(len(_data))
    elif request == "ping":
        return minipack.packb("pong")
    elif request == "ping-later":
        # A deferred reply: answer through the host and return none from handle.
        host.reply(call_id, minipack.packb("pong"))
        return None
    elif request == "whoami":
        return minipack.packb(host.self())
    elif request == "log":
        host.log(Level.INFO, "kv says hi")
        return minipack.packb("ok")
    elif request == "crash":
        raise RuntimeError("asked to crash")
    elif request == "fail":
        raise Err("asked to fail")
    raise Err(f"bad request: {request!r}"[:200])


def _cast(request: Any) -> None:
    if isinstance(request, list) and len(request) == 3 and request[0] == "put":
        try:
            key = _key(request[1])
        except Err:
            return
        _data[key] = request[2]


def _handle(msg: Envelope) -> bytes | None:
    kind = msg.kind
    if isinstance(kind, Kind_Call):
        try:
            request = minipack.unpackb(msg.payload)
        except minipack.MsgpackError as exc:
            raise Err(f"bad request: {exc}") from None
        return _call(request, kind.value)
    if isinstance(kind, Kind_Cast):
        try:
            request = minipack.unpackb(msg.payload)
        except minipack.MsgpackError:
            return None
        _cast(request)
    return None


class WitWorld(wit_world.WitWorld):
    def init(self, args: bytes) -> None:
        global _data
        try:
            config = minipack.unpackb(args)
        except minipack.MsgpackError as exc:
            raise Err(f"bad init args: {exc}") from None
        if config is None:
            _data = {}
            return
        data = _check_data(config)
        if data is None or len(config) != 1:
            raise Err('bad init args: expected nil or {"data": {...}}')
        _data = dict(data)

    def handle(self, msg: Envelope) -> bytes | None:
        try:
            return _handle(msg)
        except Err:
            raise  # componentize-py turns it into handle's err(...)
        except Exception as exc:
            # Any other exception traps the instance. The trap itself carries no Python
            # traceback (stderr is stubbed), so say what happened through the host first.
            host.log(Level.ERROR, f"kvstore crashed: {type(exc).__name__}: {exc}")
            raise

    def snapshot(self) -> bytes:
        return minipack.packb({"version": SNAPSHOT_VERSION, "data": _data})

    def upgrade(self, from_version: str, state: bytes) -> None:
        global _data
        try:
            snap = minipack.unpackb(state)
        except minipack.MsgpackError:
            raise Err("bad state") from None
        data = _check_data(snap)
        version = snap.get("version") if isinstance(snap, dict) else None
        if data is None or type(version) is not int or version != SNAPSHOT_VERSION:
            raise Err("bad state")
        _data = dict(data)
