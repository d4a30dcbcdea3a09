"""Opt-in memory accounting: a host memory creator that knows every linear memory's size.

wasmtime's component API gives the host no handle on a component instance's core
memories, so the only way to learn their sizes is to allocate them ourselves, through
the engine-wide host memory creator. The price is that wasmtime can no longer map data
segments copy-on-write from a memory image: every instantiation copies them (about
11 MB for a componentize-py guest). That is why this is only installed when memory
tracking is asked for (see ``_engine``); the default engine never uses it.

Each memory is one anonymous mapping, reserved once and never moved::

    [guard | accessible (RW) | reserved, not yet accessible (PROT_NONE) | guard]

(the guards are the engine's ``memory_guard_size``: none, as bounds are checked in code.)

Growing makes more of the reservation accessible with ``mprotect``; growing past it
returns an error, which wasmtime turns into ``memory.grow`` returning -1. The
reservation is sized so that a process never needs more: its memory limit
(``Limits.memory``) when the memory is created while an instance is being set up, else
4 GiB (all a 32-bit memory can address).

The callbacks run on whatever thread runs wasm (threaded guests instantiate and run in
worker threads) and hold the GIL while they run; each memory is only ever grown by the
one thread that owns its store, and its size is a plain int, so reading it from another
thread is safe.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import os
import threading
from typing import Any

import wasmtime
from wasmtime import _bindings as raw

from ._imports import keep_forever

PAGE = mmap.PAGESIZE
#: Reservation for a memory nobody set a limit for: the whole 32-bit address space.
DEFAULT_RESERVATION = 4 << 30

_libc = ctypes.CDLL(None, use_errno=True)
_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_mprotect = _libc.mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_PROT_NONE = 0


def _round_up(n: int) -> int:
    return (n + PAGE - 1) // PAGE * PAGE


#: In the error of a memory refused because of its instance's limit (Limits.memory).
LIMIT_MARK = "airssys: memory limit"


class Region:
    """One linear memory: where it is mapped and how much of it the guest may use."""

    __slots__ = ("accessible", "base", "capacity", "mapped", "mapping", "sink", "size")

    def __init__(self, mapping: int, mapped: int, base: int, capacity: int, sink: Sink | None = None) -> None:
        self.sink = sink  # the instance whose total it counts in
        self.mapping = mapping  # start of the whole mapping, front guard included
        self.mapped = mapped  # bytes mapped, both guards included
        self.base = base
        self.size = 0  # bytes the guest sees (wasm pages)
        self.accessible = 0  # bytes mprotect'ed RW (size rounded up to host pages)
        self.capacity = capacity  # the most it may grow to without moving


class Sink:
    """Where the memories created while an instance is set up are recorded; ``limit``
    bounds their sum (all of the instance's memories together)."""

    __slots__ = ("limit", "refused", "regions")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.regions: list[Region] = []
        self.refused = False
        """Set once growth (or a new memory) was refused because of ``limit``."""

    def bytes(self) -> int:
        """The current size of every memory still alive (freed ones count 0)."""
        return sum(r.size for r in self.regions)


_CURRENT = threading.local()
#: env id -> live memory. Only the callbacks and the finalizer touch it.
_REGIONS: dict[int, Region] = {}
_IDS = itertools.count(1)


class attributing:
    """``with attributing(sink):`` memories created on this thread are recorded in it."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def __enter__(self) -> Sink:
        self.previous = getattr(_CURRENT, "sink", None)
        _CURRENT.sink = self.sink
        return self.sink

    def __exit__(self, *exc: object) -> None:
        _CURRENT.sink = self.previous


def live() -> tuple[int, int]:
    """(memories alive, bytes of address space they map) in this Python process."""
    regions = list(_REGIONS.values())
    return len(regions), sum(r.mapped for r in regions)


def _error(message: str) -> int:
    return ctypes.cast(wasmtime.WasmtimeError(message)._consume(), ctypes.c_void_p).value or 0


def _protect(region: Region, new_size: int) -> str | None:
    """Make ``new_size`` bytes accessible; an error message if that is not possible."""
    want = _round_up(new_size)
    if want > region.accessible:
        rc = _mprotect(region.base + region.accessible, want - region.accessible,
                       mmap.PROT_READ | mmap.PROT_WRITE)
        if rc != 0:
            return f"mprotect failed: {os.strerror(ctypes.get_errno())}"
        region.accessible = want
    region.size = new_size
    return None


# The callbacks bind what they use as default arguments: wasmtime may free a store (and
# call _free_memory) while the interpreter is tearing down this module's globals.

@raw.wasmtime_memory_get_callback_t
def _get_memory(env, byte_size, capacity, _regions=_REGIONS):  # type: ignore[no-untyped-def]
    # Called when wasmtime (re)reads the memory's base and length: after creation and
    # after each grow, not on every access. A failure here would abort, so keep it bare.
    region = _regions[env]
    byte_size[0] = region.size
    capacity[0] = region.capacity
    return region.base


@raw.wasmtime_memory_grow_callback_t
def _grow_memory(env, new_size, _regions=_REGIONS, _error=_error, _protect=_protect, LIMIT_MARK=LIMIT_MARK):  # type: ignore[no-untyped-def]
    try:
        region = _regions[env]
        sink = region.sink
        if sink is not None and sink.limit is not None and \
                sink.bytes() - region.size + new_size > sink.limit:
            sink.refused = True
            return _error(f"{LIMIT_MARK}: the instance's memories cannot grow to "
                          f"{sink.bytes() - region.size + new_size} bytes (limit {sink.limit})")
        if new_size > region.capacity:
            return _error(f"linear memory cannot grow to {new_size} bytes: "
                          f"{region.capacity} are reserved for it")
        failed = _protect(region, new_size)
        return _error(failed) if failed else 0
    except BaseException as exc:  # never unwind into wasmtime
        return _error(f"growing linear memory failed: {exc!r}")


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _free_memory(env, _regions=_REGIONS, _munmap=_munmap):  # type: ignore[no-untyped-def]
    region = _regions.pop(env, None)
    if region is not None:
        region.size = 0  # the instance's figure drops to 0 before the pages go
        region.accessible = 0
        _munmap(region.mapping, region.mapped)


@raw.wasmtime_new_memory_callback_t
def _new_memory(env, ty, minimum, maximum, reserved, guard, ret):  # type: ignore[no-untyped-def]
    try:
        sink: Sink | None = getattr(_CURRENT, "sink", None)
        want = DEFAULT_RESERVATION
        if sink is not None and sink.limit is not None:
            left = sink.limit - sink.bytes()
            if minimum > left:
                sink.refused = True
                return _error(f"{LIMIT_MARK}: a memory of {minimum} bytes does not fit in the "
                              f"instance's limit ({left} of {sink.limit} bytes left)")
            want = sink.limit  # growth is checked against the total as it happens
        # Never less than wasmtime's own reservation (compiled code may skip bounds
        # checks within it) or the memory's minimum; never more than its maximum needs.
        capacity = _round_up(max(reserved, minimum, min(maximum, want)))
        guard = _round_up(guard)
        mapped = guard + capacity + guard
        mapping = _mmap(None, mapped, _PROT_NONE,
                        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
        if mapping is None or mapping == _MAP_FAILED:
            return _error(f"cannot reserve {mapped} bytes for a linear memory: "
                          f"{os.strerror(ctypes.get_errno())}")
        region = Region(mapping, mapped, mapping + guard, capacity, sink)
        failed = _protect(region, minimum)
        if failed:
            _munmap(mapping, mapped)
            return _error(failed)
        key = next(_IDS)
        _REGIONS[key] = region
        if sink is not None:
            sink.regions.append(region)
        out = ret.contents
        out.env = key
        out.get_memory = _get_memory
        out.grow_memory = _grow_memory
        out.finalizer = _free_memory
        return 0
    except BaseException as exc:  # never unwind into wasmtime
        return _error(f"creating linear memory failed: {exc!r}")


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _no_finalizer(env):  # type: ignore[no-untyped-def]
    return None


keep_forever(_get_memory, _grow_memory, _free_memory, _new_memory, _no_finalizer)

_CREATOR = raw.wasmtime_memory_creator_t()
_CREATOR.env = None
_CREATOR.new_memory = _new_memory
_CREATOR.finalizer = _no_finalizer


def install(config: Any) -> None:
    """Make every memory of engines built from ``config`` one of ours."""
    raw.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(_CREATOR))
