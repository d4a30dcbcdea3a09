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
from functools import partial
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component as cm

from .._limits import Limits as Limits
from . import _abi, _layout, _memory
from ._engine import TICK_SECONDS, engine_host
from ._component import imports_wasi
from ._imports import HOSTS, HostApi, keep_forever, linker
from .._reasons import MAX_DETAIL_BYTES, bounded_prefix, bounded_text

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
# Writes a func straight into the instance's block (wasmtime-py's binding wants a typed
# pointer object, i.e. one more ctypes object per export).
_get_func = _raw("wasmtime_component_instance_get_func", ctypes.c_bool, _VP, _VP, _VP, _VP)
_store_delete = _raw("wasmtime_store_delete", None, _VP)
_UpgradeArgs = Val * 2


def _read_ptr(addr: int) -> int:
    """The pointer stored at ``addr`` (0 for NULL)."""
    return ctypes.c_void_p.from_address(addr).value or 0


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

# Names shared by every instance's argument structures; never freed. Instances copy
# their (size, data) pairs in as plain ints: no Python object per instance refers to them.
_KIND_VECS = [_abi.new_name(n.encode()) for n in KIND_NAMES]
_FIELD_VECS = [_abi.new_name(n) for n in (b"kind", b"sender", b"payload")]


def _name_pair(vec: ffi.wasm_byte_vec_t) -> tuple[int, int]:
    return vec.size, ctypes.cast(vec.data, ctypes.c_void_p).value or 0


_KIND_PAIRS = tuple(_name_pair(v) for v in _KIND_VECS)
_FIELD_PAIRS = tuple(_name_pair(v) for v in _FIELD_VECS)


def _flat_struct(name: str, size: int, layout: list[tuple[str, Any, int]]) -> type[ctypes.Structure]:
    """A structure of ``size`` bytes with scalar fields at the given offsets (padding in
    between). Each field a call writes or reads is then one attribute of one object,
    instead of a chain of nested ctypes views (one object each, all GC-tracked)."""
    fields: list[tuple[str, Any]] = []
    pos = 0
    for fname, ftype, offset in sorted(layout, key=lambda f: f[2]):
        assert offset >= pos and offset % ctypes.alignment(ftype) == 0, (fname, offset)
        if offset > pos:
            fields.append((f"_pad{pos}", ctypes.c_uint8 * (offset - pos)))
        fields.append((fname, ftype))
        pos = offset + ctypes.sizeof(ftype)
    if size > pos:
        fields.append((f"_pad{pos}", ctypes.c_uint8 * (size - pos)))
    cls = type(name, (ctypes.Structure,), {"_fields_": fields})
    for fname, _, offset in layout:
        assert getattr(cls, fname).offset == offset, fname
    assert ctypes.sizeof(cls) == size, name
    return cls


_FuncT = ffi.wasmtime_component_func_t
_U = _abi.UNION_OFFSET
_VS = _abi.VAL_SIZE
_ENTRY = ffi.wasmtime_component_valrecord_entry
_ENTRY_SIZE = ctypes.sizeof(_ENTRY)
_ENTRY_VAL = _ENTRY.val.offset
_VARIANT_VAL = ffi.wasmtime_component_valunion_t.variant.offset + dict(
    ffi.wasmtime_component_valunion_t._fields_)["variant"].val.offset
_RESULT_T = dict(ffi.wasmtime_component_valunion_t._fields_)["result"]
assert _ENTRY.name.offset == 0 and _RESULT_T.is_ok.offset == 0 and _VARIANT_VAL == 16

# Everything one instance passes to and gets from its calls, in one Python-owned block
# (one GC-tracked object): the four export funcs, the fuel read-back, the result slot,
# and ``handle``'s argument, a record {kind variant, sender option, payload list} whose
# entries and boxed ref live in the block too. wasmtime only reads call arguments, so
# the record is never given to a wasmtime free; what it owns (the sender string box,
# the payload list) is freed field by field.
_O_FUNCS = 0
_O_FUEL = _O_FUNCS + len(EXPORTS) * ctypes.sizeof(_FuncT)
_O_RESULT = _O_FUEL + 8
_O_ENV = _O_RESULT + _VS
_O_ENTRIES = _O_ENV + _VS
_O_REF = _O_ENTRIES + 3 * _ENTRY_SIZE
_BLOCK_SIZE = _O_REF + _VS
_E_KIND, _E_SENDER, _E_PAYLOAD = (_O_ENTRIES + i * _ENTRY_SIZE for i in range(3))
_O_PAYLOAD_LIST = _E_PAYLOAD + _ENTRY_VAL + _U
_SZ, _PTR, _U8 = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_uint8
_Block = _flat_struct("_Block", _BLOCK_SIZE, [
    ("funcs", _FuncT * len(EXPORTS), _O_FUNCS),
    ("fuel_left", ctypes.c_uint64, _O_FUEL),
    ("res_kind", _U8, _O_RESULT),
    ("res_ok", ctypes.c_bool, _O_RESULT + _U),  # result.is_ok
    ("res_val", _PTR, _O_RESULT + _U + _RESULT_T.val.offset),  # result.val
    ("env_kind", _U8, _O_ENV),
    ("env_size", _SZ, _O_ENV + _U),  # record.size
    ("env_data", _PTR, _O_ENV + _U + 8),  # record.data
    *[(f"name{i}_size", _SZ, e) for i, e in enumerate((_E_KIND, _E_SENDER, _E_PAYLOAD))],
    *[(f"name{i}_data", _PTR, e + 8) for i, e in enumerate((_E_KIND, _E_SENDER, _E_PAYLOAD))],
    ("kind_kind", _U8, _E_KIND + _ENTRY_VAL),
    ("disc_size", _SZ, _E_KIND + _ENTRY_VAL + _U),  # variant.discriminant
    ("disc_data", _PTR, _E_KIND + _ENTRY_VAL + _U + 8),
    ("disc_val", _PTR, _E_KIND + _ENTRY_VAL + _U + _VARIANT_VAL),  # variant.val
    ("sender_kind", _U8, _E_SENDER + _ENTRY_VAL),
    ("sender_box", _PTR, _E_SENDER + _ENTRY_VAL + _U),  # option
    ("payload_kind", _U8, _E_PAYLOAD + _ENTRY_VAL),
    ("ref_kind", _U8, _O_REF),
    ("ref_u64", ctypes.c_uint64, _O_REF + _U),
])


class _ComponentInfo:
    """What every instance of one compiled component shares: export indices, WASI, its
    memories and tables (see ``_layout``) and the store limits they give each Limits."""

    def __init__(self, component: cm.Component) -> None:
        self.layout: _layout.Layout = getattr(component, "_airssys_layout", _layout.UNKNOWN)
        self._budgets: dict[tuple[Limits, bool], tuple[int | None, int | None]] = {}
        self.exports = {}
        for name in EXPORTS:
            index = component.get_export_index(name)
            assert index is not None, name  # checked against the world at load
            self.exports[name] = index
        self.imports_wasi = imports_wasi(component)

    def memory_budget(self, limits: Limits, tracked: bool) -> tuple[int | None, int | None]:
        """(what all its memories together may take, the store's limit per memory).

        ``Limits.memory`` bounds the instance's total: its tables' most (each at
        ``table_elements``, 8 bytes an element) is set aside first, the rest is for its
        memories. The host memory creator (memory tracking) enforces that rest on their
        sum (the per-memory limit is then None); wasmtime's own memories only know a limit per memory, so it is split
        evenly between the memories the component defines."""
        key = (limits, tracked)
        cached = self._budgets.get(key)
        if cached is None:
            total = limits.memory
            if total is None:
                cached = (None, None)
            else:
                tables = self.layout.table_bytes(limits.table_elements) or 0
                budget = max(0, total - tables)
                # Tracked: the creator checks every growth against the total (and so
                # knows a refusal was the limit's); the store's own limit stays off.
                per_memory = None if tracked else budget // max(1, self.layout.memories)
                cached = (budget, per_memory)
            self._budgets[key] = cached
        return cached


def register_layout(component: cm.Component, layout: _layout.Layout) -> None:
    """Record what the binary ``component`` was compiled from allocates (before its
    first instance)."""
    component._airssys_layout = layout  # type: ignore[attr-defined]
    info = _INFO.get(id(component))
    if info is not None:
        info.layout = layout
        info._budgets.clear()


_INFO: dict[int, _ComponentInfo] = {}


def _info(component: cm.Component) -> _ComponentInfo:
    info = _INFO.get(id(component))
    if info is None:
        info = _INFO[id(component)] = _ComponentInfo(component)
        component._airssys_info = info  # keep the id stable for the component's lifetime
    return info


class WasiGrantLike(Protocol):
    dirs: tuple[Any, ...]
    env: tuple[tuple[str, str], ...]
    inherit_env: tuple[str, ...]


def _wasi_config(grant: WasiGrantLike | None) -> wasmtime.WasiConfig:
    """The WASI context of one process. ``None`` (no grant) is an empty one: wasmtime's
    defaults give no directories, no environment or arguments, no socket address (every
    connect, bind and name lookup is denied), stdin closed, stdout and stderr discarded;
    clocks and randomness work. A grant adds exactly its directories and variables."""
    config = wasmtime.WasiConfig()
    if grant is None:
        return config
    for pre in grant.dirs:
        config.preopen_dir(pre.host_path, pre.guest_path, pre.writable)
    env = list(grant.env) + [(k, os.environ[k]) for k in grant.inherit_env if k in os.environ]
    if env:
        config.env = env
    return config


class GuestError(Exception):
    """The guest returned ``err(message)`` from an export."""


def _guest_error_text(val_addr: int) -> str:
    """A guest's ``err`` text, capped as every exit reason is: wasmtime has copied it out
    of the guest once (unavoidable); only its first bytes are read from there, so a
    64 MiB text never becomes a 64 MiB Python string."""
    prefix, size = _abi.get_string_prefix_at(val_addr, MAX_DETAIL_BYTES)
    return bounded_prefix(prefix, size)


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
    # addressof(contents), not ctypes.cast: a cast leaves a pointer <-> dict reference
    # cycle behind, i.e. garbage for the cyclic GC on every tick.
    instance = _WATCHED.get(ctypes.addressof(context.contents))
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
    if "exceeds memory limits" in lowered or _memory.LIMIT_MARK in message:
        # An instance whose memories' minimum is over its limit (wasmtime's limiter, or
        # the host memory creator's total).
        return "memory_limit"
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
    return bounded_text(first.removeprefix("wasm trap: "))


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
                 wasi: WasiGrantLike | None = None,
                 watch: Callable[[GuestInstance], None] | None = None) -> None:
        host_engine = engine_host()
        self.limits = limits
        # The wasmtime-py Store is only needed to set the store up and instantiate; then
        # the instance owns the store by its address (see close), which saves three
        # GC-tracked objects per instance (the wrapper and its two pointer objects).
        self._store: wasmtime.Store | int | None = wasmtime.Store(host_engine.engine)
        store = self._store
        info = _info(component)
        budget, per_memory = info.memory_budget(limits, host_engine.track_memory)
        store.set_limits(
            memory_size=-1 if per_memory is None else per_memory,
            table_elements=-1 if limits.table_elements is None else limits.table_elements,
            instances=100,
            tables=100,
            memories=100,
        )
        # The context's address, taken without ctypes.cast: a cast hangs a dict off the
        # pointer object that refers back to it, a cycle only the cyclic GC frees.
        self._key: int = ctypes.addressof(store._context().contents)
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
        if watch is not None:
            # Before instantiation, which runs guest code (start functions) too: from here
            # on interrupt() reaches this instance, so a kill can stop it.
            watch(self)
        if info.imports_wasi:
            # Only a component that imports WASI pays for a WASI context (and the larger
            # linker); a grant to one that does not changes nothing.
            store.set_wasi(_wasi_config(wasi))
            link = linker(host_engine.engine, wasi=True)
        else:
            link = linker(host_engine.engine)
        # With memory tracking on, the memories wasmtime creates while instantiating are
        # created on this thread, by our creator, which records them here.
        self._memories = _memory.Sink(budget) if host_engine.track_memory else None
        try:
            self._arm()
            if self._memories is None:
                instance = self._enter(partial(link.instantiate, store, component))
            else:
                with _memory.attributing(self._memories):
                    instance = self._enter(partial(link.instantiate, store, component))
        except BaseException:
            self.close()
            raise
        self._store = ctypes.addressof(store._consume().contents)
        del store
        self._block = block = _Block()
        base = ctypes.addressof(block)
        funcs = [base + _O_FUNCS + i * ctypes.sizeof(_FuncT) for i in range(len(EXPORTS))]
        instance_addr = ctypes.addressof(instance._instance)
        for func, (name, index) in zip(funcs, info.exports.items(), strict=False):
            found = _get_func(instance_addr, self._key, index.ptr(), func)
            assert found, name
        self._init_func, self._handle_func, self._snapshot_func, self._upgrade_func = funcs
        self._fuel_left_addr = base + _O_FUEL
        self._result_addr = base + _O_RESULT
        self._env_addr = base + _O_ENV
        self._payload_list_addr = base + _O_PAYLOAD_LIST
        self._ref_addr = base + _O_REF
        self._prepare_envelope()

    # -- argument structures, built once -------------------------------------------------

    def _prepare_envelope(self) -> None:
        block = self._block
        block.res_kind = _abi.K_BOOL  # inert: wasmtime drops what a result slot holds
        block.env_kind = _abi.K_RECORD
        block.env_size = 3
        block.env_data = ctypes.addressof(block) + _O_ENTRIES
        (block.name0_size, block.name0_data), (block.name1_size, block.name1_data), \
            (block.name2_size, block.name2_data) = _FIELD_PAIRS
        block.kind_kind = _abi.K_VARIANT
        block.disc_size, block.disc_data = _KIND_PAIRS[0]
        block.disc_val = None
        block.ref_kind = _abi.K_U64
        block.sender_kind = _abi.K_OPTION
        block.sender_box = None
        self._sender: str | None = None
        block.payload_kind = _abi.K_LIST
        _abi.set_list_at(self._payload_list_addr, b"")

    def _release_envelope(self) -> None:
        block = self._block
        _abi.vallist_delete_at(self._payload_list_addr)
        box = block.sender_box
        if box:
            _abi.val_free_at(box)
            block.sender_box = None

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
            _get_fuel(self._key, self._fuel_left_addr)
            self.fuel_used += self.limits.fuel - self._block.fuel_left

    def _enter(self, thunk):  # type: ignore[no-untyped-def]
        try:
            return thunk()
        except wasmtime.WasmtimeError as exc:
            text = str(exc)
            raise GuestTrap(self._kind(text), _trap_text(text)) from None

    def _kind(self, text: str) -> str:
        """The exit reason kind of a trap: ``memory_limit`` when, with memory tracking,
        the limit refused a memory's growth before the guest trapped (wasmtime's own
        memories do not tell: growth past the limit then makes ``memory.grow`` return -1
        and the trap is whatever the guest does next)."""
        kind = _classify(text)
        sink = self._memories
        if kind == "trap" and sink is not None and sink.refused:
            return "memory_limit"
        return kind

    def _call(self, func: int, args: int | None, nargs: int) -> None:
        """Call the export whose func is at ``func``; ``args`` is the address of ``nargs``
        values (or None). The result is left in the block's result slot."""
        if self.closed:
            raise GuestTrap("trap", "instance is closed")
        if self._memories is not None:
            self._memories.refused = False  # a refusal counts for the call it happens in
        self._arm()
        err = _func_call(func, self._key, args, nargs, self._result_addr, 1)
        self._account()
        if err:
            text = _error_text(err)
            # A trapped instance may not be entered again.
            self.closed = True
            raise GuestTrap(self._kind(text), _trap_text(text))
        err = _post_return(func, self._key)
        if err:
            self.closed = True
            text = _error_text(err)
            raise GuestTrap(self._kind(text), _trap_text(text))

    def _free_result(self) -> None:
        """Free what the result slot owns and leave it an inert ``bool``."""
        _val_delete(self._result_addr)
        block = self._block
        block.res_kind = _abi.K_BOOL
        block.res_ok = False

    def _unit_or_error(self) -> None:
        block = self._block
        try:
            if block.res_ok:
                return
            message = _guest_error_text(block.res_val)
        finally:
            self._free_result()
        raise GuestError(message)

    def init(self, args: bytes) -> None:
        arg = Val()
        _abi.set_bytes(arg, args)
        try:
            self._call(self._init_func, ctypes.addressof(arg), 1)
        finally:
            _abi.free(arg)
        self._unit_or_error()

    def handle(self, kind: int, ref: int, sender: str | None, payload: bytes) -> bytes | None:
        """Call ``handle``; return the reply bytes for ``some``, None for ``none``."""
        block = self._block
        block.disc_size, block.disc_data = _KIND_PAIRS[kind]
        if _KIND_HAS_REF[kind]:
            block.ref_u64 = ref
            block.disc_val = self._ref_addr
        else:
            block.disc_val = None
        if sender != self._sender:
            box = block.sender_box
            if box:
                _abi.val_free_at(box)
            block.sender_box = None if sender is None else _abi.boxed_string_at(sender)
            self._sender = sender
        payload_list = self._payload_list_addr
        _abi.vallist_delete_at(payload_list)
        _abi.set_list_at(payload_list, payload)
        self._call(self._handle_func, self._env_addr, 1)
        try:
            if block.res_ok:
                option = _read_ptr(block.res_val + _U)
                return _abi.get_bytes_at(option) if option else None
            message = _guest_error_text(block.res_val)
        finally:
            self._free_result()
        raise GuestError(message)

    def snapshot(self) -> bytes:
        self._call(self._snapshot_func, None, 0)
        try:
            return _abi.get_bytes_at(self._result_addr)
        finally:
            self._free_result()

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
            self._call(self._upgrade_func, base, 2)
        finally:
            if spent is None or len(state) < SPENT_MIN:
                _val_delete(base)
                _val_delete(base + _abi.VAL_SIZE)
            else:
                spent.append(args)
        self._unit_or_error()

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
        if getattr(self, "_block", None) is not None:
            self._release_envelope()
            self._block = None  # type: ignore[assignment]
        self.closed = True
        HOSTS.pop(self._key, None)
        _WATCHED.pop(self._key, None)
        store, self._store = self._store, None
        if isinstance(store, int):
            _store_delete(store)
        # A wasmtime.Store (instantiation failed) frees its store once dropped here.

    def __del__(self) -> None:
        # An instance dropped without close (a process that never got to terminate)
        # must not leak its store, which wasmtime-py's wrapper would have freed.
        if getattr(self, "_store", None) is not None:
            self.close()
