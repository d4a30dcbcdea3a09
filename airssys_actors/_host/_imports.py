"""The host side of ``airssys:actor/host``: one linker, one raw callback per import.

Callbacks are registered through wasmtime's C API rather than ``LinkerInstance.add_func``
so that arguments are read in bulk (see ``_abi``). A callback finds the calling process
by the store context it is given; every process registers a :class:`HostApi` for its
store while it lives. A callback never lets a Python exception escape into wasm: a
refused call returns ``err`` to the guest, and an unexpected error traps the guest with
a message (crashing that process only).
"""

from __future__ import annotations

import ctypes
import time
from typing import Protocol
from collections.abc import Callable

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from . import _abi
from .._reasons import MAX_DETAIL_BYTES, bounded_prefix, bounded_text

TYPES_INTERFACE = "airssys:actor/types@0.1.0"
HOST_INTERFACE = "airssys:actor/host@0.1.0"
LEVELS = ("trace", "debug", "info", "warn", "error")


class HostRefused(Exception):
    """Raised by a :class:`HostApi` method to return ``err(message)`` to the guest."""


class HostApi(Protocol):
    """What a process offers its guest; methods raise :class:`HostRefused` for ``err``."""

    def self_address(self) -> str: ...
    def send(self, to: str, payload: bytes) -> None: ...
    def request(self, to: str, payload: bytes, timeout_ms: int) -> int: ...
    def send_after(self, to: str, payload: bytes, delay_ms: int) -> int: ...
    def cancel_timer(self, timer: int) -> bool: ...
    def spawn(self, component: str, args: bytes) -> str: ...
    def link(self, target: str) -> None: ...
    def monitor(self, target: str) -> int: ...
    def stop(self, reason: str) -> None: ...
    def log(self, level: str, message: str) -> None: ...
    def now_ms(self) -> int: ...
    def reply(self, call: int, payload: bytes) -> None: ...


#: Store context address -> the HostApi of the process that owns that store.
HOSTS: dict[int, HostApi] = {}

Val = _abi.Val
_get_string = _abi.get_string
_get_bytes = _abi.get_bytes


def _free_args(args: ctypes._Pointer, nargs: int) -> None:
    # Arguments are handed to the callee; release the heap parts we read.
    for i in range(nargs):
        arg = args[i]
        kind = arg.kind
        if kind == _abi.K_STRING:
            ffi.wasm_byte_vec_delete(ctypes.byref(arg.of.string))
        elif kind == _abi.K_LIST:
            ffi.wasmtime_component_vallist_delete(ctypes.byref(arg.of.list))
        elif kind == _abi.K_ENUM:
            ffi.wasm_byte_vec_delete(ctypes.byref(arg.of.enumeration))


def _unit_result(out: Val, fn: Callable[[], object]) -> None:
    try:
        fn()
    except HostRefused as refused:
        _abi.set_result(out, False, _abi.boxed_string(str(refused)))
        return
    _abi.set_result(out, True, None)


def _u64_result(out: Val, fn: Callable[[], int]) -> None:
    try:
        value = fn()
    except HostRefused as refused:
        _abi.set_result(out, False, _abi.boxed_string(str(refused)))
        return
    _abi.set_result(out, True, _abi.boxed_u64(value))


def _self(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    _abi.set_string(out, host.self_address())


def _send(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    to, payload = _get_string(a[0]), _get_bytes(a[1])
    _unit_result(out, lambda: host.send(to, payload))


def _request(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    to, payload, timeout = _get_string(a[0]), _get_bytes(a[1]), a[2].of.u32
    _u64_result(out, lambda: host.request(to, payload, timeout))


def _send_after(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    to, payload, delay = _get_string(a[0]), _get_bytes(a[1]), a[2].of.u32
    _u64_result(out, lambda: host.send_after(to, payload, delay))


def _cancel_timer(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    out.kind = _abi.K_BOOL
    out.of.boolean = bool(host.cancel_timer(a[0].of.u64))


def _spawn(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    component, args = _get_string(a[0]), _get_bytes(a[1])
    try:
        address = host.spawn(component, args)
    except HostRefused as refused:
        _abi.set_result(out, False, _abi.boxed_string(str(refused)))
        return
    _abi.set_result(out, True, _abi.boxed_string(address))


def _link(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    target = _get_string(a[0])
    _unit_result(out, lambda: host.link(target))


def _monitor(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    target = _get_string(a[0])
    _u64_result(out, lambda: host.monitor(target))


def _guest_text(val: Val) -> str:
    # A stop reason or a log line: only as much as the host keeps of it is read.
    return bounded_prefix(*_abi.get_string_prefix(val, MAX_DETAIL_BYTES))


def _stop(host: HostApi, a: ctypes._Pointer, out: Val | None) -> None:
    host.stop(_guest_text(a[0]))


def _log(host: HostApi, a: ctypes._Pointer, out: Val | None) -> None:
    level = _get_string_vec(a[0].of.enumeration)
    host.log(level, _guest_text(a[1]))


def _get_string_vec(vec: ffi.wasm_byte_vec_t) -> str:
    return ctypes.string_at(vec.data, vec.size).decode() if vec.size else ""


def _now_ms(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    out.kind = _abi.K_U64
    out.of.u64 = host.now_ms()


def _reply(host: HostApi, a: ctypes._Pointer, out: Val) -> None:
    call, payload = a[0].of.u64, _get_bytes(a[1])
    _unit_result(out, lambda: host.reply(call, payload))


_IMPORTS: dict[str, Callable[[HostApi, ctypes._Pointer, Val], None]] = {
    "self": _self,
    "send": _send,
    "request": _request,
    "send-after": _send_after,
    "cancel-timer": _cancel_timer,
    "spawn": _spawn,
    "link": _link,
    "monitor": _monitor,
    "stop": _stop,
    "log": _log,
    "now-ms": _now_ms,
    "reply": _reply,
}
_BY_INDEX = list(_IMPORTS.values())


@ffi.wasmtime_component_func_callback_t
def _dispatch(env, context, ty, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    try:
        host = HOSTS[ctypes.cast(context, ctypes.c_void_p).value]  # type: ignore[index]
        _BY_INDEX[env or 0](host, args, results[0] if nresults else None)
        _free_args(args, nargs)
        return 0
    except BaseException as exc:  # never unwind through wasm
        # (capped: the exception may quote what the guest passed, of any size)
        err = wasmtime.WasmtimeError(f"host error in airssys:actor/host: {bounded_text(repr(exc))}")
        return ctypes.cast(err._consume(), ctypes.c_void_p).value


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _finalize(env):  # type: ignore[no-untyped-def]
    return None


def keep_forever(*thunks: object) -> None:
    """Never free these ctypes callbacks. wasmtime calls finalizers when a linker or store
    is dropped, which can happen while the interpreter clears module globals at exit;
    a thunk freed before that would be a jump into freed memory."""
    for thunk in thunks:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(thunk))


keep_forever(_dispatch, _finalize)


#: WASI's monotonic clock, replaced in the WASI linker: its ``subscribe-*`` functions make
#: the pollables a guest sleeps on (``time.sleep`` in Python), and a sleep blocks the
#: thread running the guest inside the host, where neither the deadline nor ``kill``
#: reaches it; an inline guest would hold the node for as long as it likes. Here they
#: trap at once, naming themselves; ``now`` and ``resolution`` work as before.
MONOTONIC_CLOCK = "wasi:clocks/monotonic-clock"
#: Defined under every 0.2 patch version a guest may import: wasmtime matches an import
#: by its exact version first, then by the highest 0.2.x defined (the last one here).
_CLOCK_VERSIONS = (*(f"0.2.{n}" for n in range(40)), "0.2.999999")
_CLOCK_FUNCS = ("now", "resolution", "subscribe-instant", "subscribe-duration")
_CLOCK_START = time.monotonic_ns()


@ffi.wasmtime_component_func_callback_t
def _clock(env, context, ty, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    try:
        name = _CLOCK_FUNCS[env or 0]
        if name == "now" or name == "resolution":
            out = results[0]
            out.kind = _abi.K_U64
            # Nanoseconds since the host started: nothing about the host's uptime.
            out.of.u64 = time.monotonic_ns() - _CLOCK_START if name == "now" else 1
            return 0
        message = (f"unsupported WASI call {MONOTONIC_CLOCK}#{name}: a guest may not sleep or wait "
                   "on a timer (it would block the node); use send-after")
    except BaseException as exc:  # never unwind through wasm
        message = f"host error in {MONOTONIC_CLOCK}: {exc!r}"
    return ctypes.cast(wasmtime.WasmtimeError(message)._consume(), ctypes.c_void_p).value


keep_forever(_clock)


def _replace_monotonic_clock(link: cm.Linker) -> None:
    link.allow_shadowing = True
    with link.root() as root:
        for version in _CLOCK_VERSIONS:
            with root.add_instance(f"{MONOTONIC_CLOCK}@{version}") as clock:
                for index, name in enumerate(_CLOCK_FUNCS):
                    _add_raw_func(clock, name, _clock, index)
    link.allow_shadowing = False


def _add_raw_func(instance: cm.LinkerInstance, name: str, callback: object, index: int) -> None:
    encoded = name.encode()
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(encoded), len(encoded), callback, index, _finalize,
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)


_LINKERS: dict[str, cm.Linker] = {}


def linker(engine: wasmtime.Engine, *, wasi: bool = False) -> cm.Linker:
    """The linker that provides ``airssys:actor/host``, plus WASI 0.2 when ``wasi`` (with
    the monotonic clock's timers refused, see :data:`MONOTONIC_CLOCK`)."""
    key = "wasi" if wasi else "host"
    cached = _LINKERS.get(key)
    if cached is not None:
        return cached
    link = _host_linker(engine)
    if wasi:
        link.add_wasip2()
        _replace_monotonic_clock(link)
    _LINKERS[key] = link
    return link


def _host_linker(engine: wasmtime.Engine) -> cm.Linker:
    link = cm.Linker(engine)
    with link.root() as root:
        with root.add_instance(TYPES_INTERFACE):
            pass
        with root.add_instance(HOST_INTERFACE) as host:
            for index, name in enumerate(_IMPORTS):
                _add_raw_func(host, name, _dispatch, index)
    return link
