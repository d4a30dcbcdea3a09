"""One guest instance: a wasmtime store holding one instantiated component.

Calls into the four exports go straight through wasmtime's C API with argument values
prepared once per instance and updated in place (see ``_abi``): a ``handle`` call costs
a handful of ctypes calls, not one Python object per byte. Every call runs with a fuel
budget and an epoch deadline; a trap becomes :class:`GuestTrap` with the exit reason it
means, an ``err`` result :class:`GuestError`.
"""

from __future__ import annotations

import ctypes
import os
import time
from ctypes import byref
from typing import Any, Protocol

import attrs
import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from . import _abi, _memory
from ._engine import TICK_SECONDS, engine_host
from ._component import imports_wasi
from ._imports import HOSTS, HostApi, keep_forever, linker

Val = _abi.Val
def _raw(name: str, restype: Any, *argtypes: Any) -> Any:
    """A C function of wasmtime's, bound with plain addresses in and out. ``dll[name]``
    makes a fresh function object, so wasmtime-py's own binding is left as it is; these
    skip its Python wrapper and the pointer object it builds for every result."""
    fn = ffi.dll[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_VP = ctypes.c_void_p
_func_call = _raw("wasmtime_component_func_call", _VP, _VP, _VP, _VP, ctypes.c_size_t, _VP, ctypes.c_size_t)
_post_return = _raw("wasmtime_component_func_post_return", _VP, _VP, _VP)
_set_fuel = _raw("wasmtime_context_set_fuel", _VP, _VP, ctypes.c_uint64)
_get_fuel = _raw("wasmtime_context_get_fuel", _VP, _VP, _VP)
_set_deadline = _raw("wasmtime_context_set_epoch_deadline", None, _VP, ctypes.c_uint64)
_error_message = _raw("wasmtime_error_message", None, _VP, _VP)
_error_delete = _raw("wasmtime_error_delete", None, _VP)
_byte_vec_delete = _raw("wasm_byte_vec_delete", None, _VP)
_byte_vec_new = _raw("wasm_byte_vec_new", None, _VP, ctypes.c_size_t, ctypes.c_char_p)
_val_delete = _raw("wasmtime_component_val_delete", None, _VP)
_UpgradeArgs = Val * 2


def _error_text(err: int) -> str:
    """The text of a wasmtime error (which is freed). Raw, because a trap is on the
    path from a crash to its restart and wasmtime-py's wrapper costs more than the text."""
    vec = ffi.wasm_byte_vec_t()
    try:
        _error_message(err, ctypes.addressof(vec))
        try:
            return ctypes.string_at(vec.data, vec.size).decode("utf-8", "replace")
        finally:
            _byte_vec_delete(ctypes.addressof(vec))
    finally:
        _error_delete(err)

KIND_NAMES = ("cast", "call", "reply", "failed", "down", "exit", "timer")
_KIND_HAS_REF = (False, True, True, True, True, False, True)
EXPORTS = ("init", "handle", "snapshot", "upgrade")

# Names shared by every instance's argument structures; never freed (a structure is
# detached from them before it is freed).
_KIND_VECS = [_abi.new_name(n.encode()) for n in KIND_NAMES]
_FIELD_VECS = [_abi.new_name(n) for n in (b"kind", b"sender", b"payload")]
_EMPTY_VEC = ffi.wasm_byte_vec_t()


class _ComponentInfo:
    """What every instance of one compiled component shares: export indices, WASI."""

    def __init__(self, component: cm.Component) -> None:
        self.exports = {}
        for name in EXPORTS:
            index = component.get_export_index(name)
            assert index is not None, name  # checked against the world at load
            self.exports[name] = index
        self.imports_wasi = imports_wasi(component)


_INFO: dict[int, _ComponentInfo] = {}


def _info(component: cm.Component) -> _ComponentInfo:
    info = _INFO.get(id(component))
    if info is None:
        info = _INFO[id(component)] = _ComponentInfo(component)
        component._airssys_info = info  # keep the id stable for the component's lifetime
    return info


@attrs.frozen
class Limits:
    """Resource limits of one process; ``None`` means unlimited."""

    fuel: int | None = 1_000_000_000
    """Fuel (roughly wasm instructions) per call into the guest: reason ``out_of_fuel``."""
    deadline: float | None = 5.0
    """Wall-clock seconds per call into the guest: reason ``deadline``."""
    memory: int | None = 256 << 20
    """Bytes of linear memory per instance: growth past it fails."""
    table_elements: int | None = 100_000
    max_message: int = 1 << 20
    """Largest message, in encoded bytes, it may send or receive."""
    max_pending: int = 10_000
    """Outstanding requests and monitors a guest may hold at once (host calls past it
    return ``err``)."""


class WasiGrantLike(Protocol):
    dirs: tuple[Any, ...]
    env: tuple[tuple[str, str], ...]
    inherit_env: tuple[str, ...]


def _wasi_config(grant: WasiGrantLike) -> wasmtime.WasiConfig:
    config = wasmtime.WasiConfig()
    for pre in grant.dirs:
        config.preopen_dir(pre.host_path, pre.guest_path, pre.writable)
    env = list(grant.env) + [(k, os.environ[k]) for k in grant.inherit_env if k in os.environ]
    if env:
        config.env = env
    return config


class GuestError(Exception):
    """The guest returned ``err(message)`` from an export."""


class GuestTrap(Exception):
    """The guest trapped; ``kind`` is the exit reason kind (trap, out_of_fuel, deadline,
    memory_limit) and the message is wasmtime's trap text."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_KILLED_MARK = "airssys: interrupted: killed"
_DEADLINE_MARK = "airssys: interrupted: deadline"

_DeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.POINTER(ffi.wasmtime_context_t), ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8),
)
#: Store context address -> the instance being watched by the deadline callback.
_WATCHED: dict[int, GuestInstance] = {}


@_DeadlineCallback
def _on_epoch(context, env, delta, kind):  # type: ignore[no-untyped-def]
    # Runs on the thread executing wasm, once per tick while an interruptible call runs.
    instance = _WATCHED.get(ctypes.cast(context, ctypes.c_void_p).value)  # type: ignore[arg-type]
    if instance is not None:
        if instance.kill_requested:
            return ctypes.cast(wasmtime.WasmtimeError(_KILLED_MARK)._consume(), ctypes.c_void_p).value
        if instance.call_deadline is not None and time.monotonic() > instance.call_deadline:
            return ctypes.cast(wasmtime.WasmtimeError(_DEADLINE_MARK)._consume(), ctypes.c_void_p).value
    delta[0] = 1
    kind[0] = 0  # continue
    return 0


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _no_finalizer(env):  # type: ignore[no-untyped-def]
    return None


keep_forever(_on_epoch, _no_finalizer)


def _classify(message: str) -> str:
    if _KILLED_MARK in message:
        return "killed"
    if _DEADLINE_MARK in message:
        return "deadline"
    lowered = message.lower()
    if "all fuel consumed" in lowered:
        return "out_of_fuel"
    if "interrupt" in lowered:
        return "deadline"
    if "too much data is being copied" in lowered:
        # wasmtime caps what one call may copy between host and guest (~2.8 MB as
        # list<u8> values); a guest that returns more cannot be read back.
        return "message_too_large"
    return "trap"


def _trap_text(message: str) -> str:
    """The line that names the trap, without wasmtime's backtrace."""
    text = message.strip()
    for mark in (_KILLED_MARK, _DEADLINE_MARK):
        if mark in text:
            return mark.rsplit(": ", 1)[1]
    if "Caused by:" in text:
        text = text.split("Caused by:", 1)[1].strip()
    first = text.splitlines()[0].strip() if text else "trap"
    return first.removeprefix("wasm trap: ")


#: The smallest state whose ``upgrade`` arguments a code change frees after the resume
#: rather than at once. From here on (a list of 32 MiB of values) the list is a fresh
#: mapping whatever happens, so freeing it (unmapping it, ~6 ms at 1 MiB) is pure cost
#: in the pause. A smaller state's list is freed at once: allocations that follow reuse
#: its memory instead of touching fresh pages, which costs more than the free (10 KiB
#: states paused ~1.5x longer with their frees deferred). The snapshot's list is freed
#: at once too: deferring it would hold both lists at the same time (+32 MiB at 1 MiB).
SPENT_MIN = _abi.BULK_MIN


def free_spent(spent: list[Any]) -> None:
    """Free the values :meth:`GuestInstance.upgrade` left in ``spent`` (each a value or
    an array of them); ``spent`` is emptied."""
    while spent:
        vals = spent.pop()
        base = ctypes.addressof(vals)
        for offset in range(0, ctypes.sizeof(vals), _abi.VAL_SIZE):
            _val_delete(base + offset)


class GuestInstance:
    """A live instance of a component. Not thread-safe: one call at a time.

    ``interruptible`` instances check, every epoch tick, whether :meth:`interrupt` was
    called (from any thread) and trap with ``killed`` if so. That is how a call running
    in a worker thread is stopped; inline calls are bounded by fuel and deadline only.
    """

    def __init__(self, component: cm.Component, host: HostApi, limits: Limits, *, interruptible: bool = False,
                 wasi: WasiGrantLike | None = None) -> None:
        host_engine = engine_host()
        self.limits = limits
        self._store = store = wasmtime.Store(host_engine.engine)
        store.set_limits(
            memory_size=-1 if limits.memory is None else limits.memory,
            table_elements=-1 if limits.table_elements is None else limits.table_elements,
            instances=100,
            tables=100,
            memories=100,
        )
        self._context = store._context()
        self._key = ctypes.cast(self._context, ctypes.c_void_p).value
        HOSTS[self._key] = host
        self.fuel_used = 0
        self.closed = False
        self.interruptible = interruptible
        self.next_call_fault: str | None = None
        self._unlimited_armed = False
        self.kill_requested = False
        self.call_deadline: float | None = None
        if interruptible:
            _WATCHED[self._key] = self
            ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), _on_epoch, None, _no_finalizer)
        info = _info(component)
        if wasi is not None:
            store.set_wasi(_wasi_config(wasi))
            link = linker(host_engine.engine, wasi=True)
        elif info.imports_wasi:
            link = linker(host_engine.engine, deny_unknown=component)
        else:
            link = linker(host_engine.engine)
        # With memory tracking on, the memories wasmtime creates while instantiating are
        # created on this thread, by our creator, which records them here.
        self._memories = _memory.Sink(limits.memory) if host_engine.track_memory else None
        try:
            self._arm()
            if self._memories is None:
                instance = self._enter(lambda: link.instantiate(store, component))
            else:
                with _memory.attributing(self._memories):
                    instance = self._enter(lambda: link.instantiate(store, component))
        except BaseException:
            self.close()
            raise
        self._funcs = {}
        for name, index in info.exports.items():
            func = ffi.wasmtime_component_func_t()
            found = ffi.wasmtime_component_instance_get_func(
                byref(instance._instance), self._context, index.ptr(), byref(func))
            assert found, name
            self._funcs[name] = func
        self._func_addrs = {name: ctypes.addressof(f) for name, f in self._funcs.items()}
        self._fuel_left = ctypes.c_uint64()
        self._fuel_left_addr = ctypes.addressof(self._fuel_left)
        self._prepare_envelope()

    # -- argument structures, built once -------------------------------------------------

    def _prepare_envelope(self) -> None:
        self._env = env = Val()
        env.kind = _abi.K_RECORD
        ffi.wasmtime_component_valrecord_new_uninit(byref(env.of.record), 3)
        self._entries = entries = env.of.record.data
        for i, vec in enumerate(_FIELD_VECS):
            entries[i].name = vec
        self._kind_val = kind = entries[0].val
        kind.kind = _abi.K_VARIANT
        self._kind_names = _KIND_VECS
        kind.of.variant.discriminant = self._kind_names[0]
        kind.of.variant.val = None
        self._ref_box = _abi.boxed_u64(0)
        self._sender_val = entries[1].val
        self._sender_val.kind = _abi.K_OPTION
        self._sender_val.of.option = None
        self._sender: str | None = None
        self._payload_val = entries[2].val
        _abi.set_bytes(self._payload_val, b"")
        self._env_addr = ctypes.addressof(env)
        self._result = Val()
        self._result_addr = ctypes.addressof(self._result)

    def _release_envelope(self) -> None:
        kind = self._kind_val
        # The names are shared by every instance: detach them before freeing.
        kind.of.variant.discriminant = _EMPTY_VEC
        kind.of.variant.val = None
        for i in range(3):
            self._entries[i].name = _EMPTY_VEC
        ffi.wasmtime_component_val_free(self._ref_box)
        _abi.free(self._env)

    # -- calls ------------------------------------------------------------------------

    def _arm(self) -> None:
        """Set this call's fuel budget and deadline. Unlimited stores are armed once
        (with effectively endless fuel and no deadline) and cost nothing per call."""
        limits = self.limits
        ctx = self._key
        if self.next_call_fault is not None:
            # Fault injection: the real limit, hit on this call.
            fault, self.next_call_fault = self.next_call_fault, None
            _set_fuel(ctx, 0 if fault == "fuel" else (limits.fuel or 2**63))
            self.call_deadline = time.monotonic() if fault == "deadline" and self.interruptible else None
            _set_deadline(ctx, 0 if fault == "deadline" else 2**62)
            self._unlimited_armed = False
            return
        unlimited = limits.fuel is None and limits.deadline is None and not self.interruptible
        if unlimited:
            if not self._unlimited_armed:
                _set_fuel(ctx, 2**63)
                _set_deadline(ctx, 2**62)
                self._unlimited_armed = True
            return
        if limits.fuel is not None:
            _set_fuel(ctx, limits.fuel)
        else:
            _set_fuel(ctx, 2**63)
        if self.interruptible:
            self.call_deadline = None if limits.deadline is None else time.monotonic() + limits.deadline
            _set_deadline(ctx, 1)
        elif limits.deadline is not None:
            _set_deadline(ctx, max(1, int(limits.deadline / TICK_SECONDS) + 1))
        else:
            _set_deadline(ctx, 2**62)

    def _account(self) -> None:
        if self.limits.fuel is not None:
            left = self._fuel_left
            _get_fuel(self._key, self._fuel_left_addr)
            self.fuel_used += self.limits.fuel - left.value

    def _enter(self, thunk):  # type: ignore[no-untyped-def]
        try:
            return thunk()
        except wasmtime.WasmtimeError as exc:
            text = str(exc)
            raise GuestTrap(_classify(text), _trap_text(text)) from None

    def _call(self, name: str, args: int | None, nargs: int) -> Val:
        """Call an export; ``args`` is the address of ``nargs`` values (or None)."""
        if self.closed:
            raise GuestTrap("trap", "instance is closed")
        func = self._func_addrs[name]
        self._arm()
        err = _func_call(func, self._key, args, nargs, self._result_addr, 1)
        self._account()
        if err:
            text = _error_text(err)
            # A trapped instance may not be entered again.
            self.closed = True
            raise GuestTrap(_classify(text), _trap_text(text))
        err = _post_return(func, self._key)
        if err:
            self.closed = True
            text = _error_text(err)
            raise GuestTrap(_classify(text), _trap_text(text))
        return self._result

    def _unit_or_error(self, result: Val) -> None:
        try:
            if result.of.result.is_ok:
                return
            message = _abi.get_string(result.of.result.val.contents)
        finally:
            _abi.free(result)
        raise GuestError(message)

    def init(self, args: bytes) -> None:
        arg = Val()
        _abi.set_bytes(arg, args)
        try:
            result = self._call("init", ctypes.addressof(arg), 1)
        finally:
            _abi.free(arg)
        self._unit_or_error(result)

    def handle(self, kind: int, ref: int, sender: str | None, payload: bytes) -> bytes | None:
        """Call ``handle``; return the reply bytes for ``some``, None for ``none``."""
        variant = self._kind_val.of.variant
        variant.discriminant = self._kind_names[kind]
        if _KIND_HAS_REF[kind]:
            self._ref_box.contents.of.u64 = ref
            variant.val = self._ref_box
        else:
            variant.val = None
        if sender != self._sender:
            option = self._sender_val
            if option.of.option:
                ffi.wasmtime_component_val_free(option.of.option)
            option.of.option = None if sender is None else _abi.boxed_string(sender)
            self._sender = sender
        _abi.free_list(self._payload_val)
        _abi.set_bytes(self._payload_val, payload)
        try:
            result = self._call("handle", self._env_addr, 1)
        finally:
            variant.val = None
        try:
            outcome = result.of.result
            if outcome.is_ok:
                option = outcome.val.contents.of.option
                return _abi.get_bytes(option.contents) if option else None
            message = _abi.get_string(outcome.val.contents)
        finally:
            _abi.free(result)
        raise GuestError(message)

    def snapshot(self) -> bytes:
        result = self._call("snapshot", None, 0)
        try:
            return _abi.get_bytes(result)
        finally:
            _abi.free(result)

    def upgrade(self, from_version: str, state: bytes, spent: list[Any] | None = None) -> None:
        """Call ``upgrade``. With ``spent``, its arguments are left there for
        :func:`free_spent` instead of being freed now if the state is large (see
        :data:`SPENT_MIN`): a code change frees them after the resume."""
        # Called while the process is suspended: its arguments are built and freed with
        # direct C calls on their addresses, the version string written straight into
        # its value (about 2 us less than through the generic helpers).
        args = _UpgradeArgs()
        base = ctypes.addressof(args)
        args[0].kind = _abi.K_STRING
        text = from_version.encode()
        _byte_vec_new(base + _abi.UNION_OFFSET, len(text), text)
        _abi.set_bytes(args[1], state)
        try:
            result = self._call("upgrade", base, 2)
        finally:
            if spent is None or len(state) < SPENT_MIN:
                _val_delete(base)
                _val_delete(base + _abi.VAL_SIZE)
            else:
                spent.append(args)
        self._unit_or_error(result)

    def memory_bytes(self) -> int | None:
        """Current size in bytes of the guest's linear memories; None unless memory
        tracking is on. Thread-safe; 0 once the store is gone."""
        return None if self._memories is None else self._memories.bytes()

    @property
    def host(self) -> HostApi | None:
        """The host functions this instance's guest calls (None once it is closed)."""
        return HOSTS.get(self._key)

    def interrupt(self) -> None:
        """Make a running (or the next) call trap with ``killed``; thread-safe."""
        self.kill_requested = True

    def close(self) -> None:
        """Release the store; the instance cannot be called again."""
        if getattr(self, "_env", None) is not None:
            self._release_envelope()
            self._env = None  # type: ignore[assignment]
        self.closed = True
        HOSTS.pop(self._key, None)
        _WATCHED.pop(self._key, None)
        self._store = None  # type: ignore[assignment]
