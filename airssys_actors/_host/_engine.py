"""The wasmtime engine every node shares, its epoch ticker and the on-disk compile cache.

One engine serves the whole Python process so that a component compiled once can run on
any node. Its configuration is fixed here because compiled artifacts are only valid for
the configuration that produced them (the cache key includes it).

Memory tracking (see ``_memory``) is the one choice left to the user, and it has to be
made before the engine exists: ``AIRSSYS_TRACK_MEMORY=1`` or :func:`track_memory`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi

#: Wall-clock granularity of deadlines: the ticker bumps the engine epoch this often.
TICK_SECONDS = 0.005

# Every memory reserves this much address space up front (it may still grow past it by
# moving). wasmtime's default (4 GiB plus guards) caps a 47-bit address space at a
# few tens of thousands of instances; lunatic hit that wall near 15,000 processes.
MEMORY_RESERVATION = 16 << 20
# No guard regions: with signal-based traps off (below) every access is bounds-checked
# in code, so a guard would catch nothing, and the kernel merges one memory's leading
# guard with its neighbour's inaccessible tail, a merge and a split on every spawn and
# exit (a small guest's spawn: 81 -> 72 µs without them).
MEMORY_GUARD = 0
# A memory that grows past its reservation is moved (copied) to a new mapping with this
# much room to grow into. wasmtime adds a constant, not a factor, so with 1 MiB every MiB
# of growth past 16 MiB copied the whole memory again (quadratic: 4 s to reach 128 MiB).
# With the default Limits.memory as the room, a guest reaches its 256 MiB limit with a
# single move of at most 16 MiB; a larger limit moves once per 256 MiB. It costs address
# space only, and only for a memory that grew past 16 MiB (docs/security.md).
MEMORY_GROWTH_ROOM = 256 << 20
MAX_WASM_STACK = 512 << 10

_CONFIG_FINGERPRINT = (
    f"wasmtime={importlib.metadata.version('wasmtime')};"
    f"epoch=1;fuel=1;reserve={MEMORY_RESERVATION};guard={MEMORY_GUARD};growth={MEMORY_GROWTH_ROOM};"
    f"stack={MAX_WASM_STACK};"
    "signal_traps=0"
)

#: Set by track_memory() before the engine exists; None: ask the environment.
_TRACK_MEMORY: bool | None = None


def _tracking_wanted() -> bool:
    if _TRACK_MEMORY is not None:
        return _TRACK_MEMORY
    return os.environ.get("AIRSSYS_TRACK_MEMORY", "").strip().lower() in ("1", "true", "yes", "on")


def track_memory(enabled: bool = True) -> None:
    """Report each WASM process's linear memory size (``memory_bytes`` in
    ``Node.process_info``), or not. Off by default: it makes every spawn copy the
    guest's data segments instead of mapping them copy-on-write (slower spawns, more
    resident memory; docs/cli.md has the numbers). ``AIRSSYS_TRACK_MEMORY=1`` does the
    same. The engine is shared by the whole Python process, so this must be called
    before it is created: before the first node is opened or component loaded.

    Raises:
        RuntimeError: the engine already exists with the other setting.
    """
    global _TRACK_MEMORY
    enabled = bool(enabled)
    if _HOST is not None and _HOST.track_memory != enabled:
        state = "on" if _HOST.track_memory else "off"
        raise RuntimeError(
            f"memory tracking is already {state}: the wasmtime engine is shared by the whole "
            "Python process and already exists; call track_memory() (or set "
            "AIRSSYS_TRACK_MEMORY=1) before the first node is opened or component loaded")
    _TRACK_MEMORY = enabled


def memory_tracked() -> bool:
    """Whether linear memory sizes are tracked (or will be, if no engine exists yet)."""
    return _HOST.track_memory if _HOST is not None else _tracking_wanted()


def _make_engine(track: bool) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.wasm_component_model = True
    config.epoch_interruption = True
    config.consume_fuel = True
    config.memory_reservation = MEMORY_RESERVATION
    config.memory_guard_size = MEMORY_GUARD
    config.memory_reservation_for_growth = MEMORY_GROWTH_ROOM
    config.max_wasm_stack = MAX_WASM_STACK
    config.parallel_compilation = False
    # Traps are explicit checks in the compiled code, not SIGILL/SIGSEGV handlers. A trap
    # (a crashing guest, on the way to its restart) costs about half as much without
    # the kernel's signal delivery, and wasmtime installs no signal handlers in the
    # Python process. Guests lose nothing measurable: with a 16 MiB reservation their
    # memory accesses are bounds-checked either way (docs/security.md).
    ffi.wasmtime_config_signals_based_traps_set(config.ptr(), False)
    if track:
        from . import _memory

        # Copy-on-write images only work with wasmtime's own mmap memories (with a
        # host creator wasmtime panics if they are on); data segments are copied.
        config.memory_init_cow = False
        _memory.install(config)
    return wasmtime.Engine(config)


class EngineHost:
    """The shared engine plus a ticker thread that runs while any node is open.

    The ticker is an OS thread, not a trio task: a guest that loops holds the trio thread,
    and the epoch must still advance for its deadline to fire.
    """

    def __init__(self) -> None:
        self.track_memory = _tracking_wanted()
        self.engine = _make_engine(self.track_memory)
        self.fingerprint = _CONFIG_FINGERPRINT + (";memory_creator=airssys" if self.track_memory else "")
        self._lock = threading.Lock()
        self._users = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire_ticker(self) -> None:
        with self._lock:
            self._users += 1
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._tick, name="airssys-epoch-ticker", daemon=True
                )
                self._thread.start()

    def release_ticker(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        thread.join()

    def _tick(self) -> None:
        engine = self.engine
        while not self._stop.wait(TICK_SECONDS):
            engine.increment_epoch()


_HOST: EngineHost | None = None


def engine_host() -> EngineHost:
    global _HOST
    if _HOST is None:
        _HOST = EngineHost()
    return _HOST


def cache_dir() -> Path:
    """Where compiled components are kept (``AIRSSYS_CACHE_DIR`` overrides it)."""
    override = os.environ.get("AIRSSYS_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "airssys-actors" / "compiled"


def cache_key(wasm: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(engine_host().fingerprint.encode())
    digest.update(b"\0")
    digest.update(wasm)
    return digest.hexdigest()
