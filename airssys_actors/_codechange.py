"""Changing the code of a running WASM process (OTP's suspend / change_code / resume).

The runtime offers the two phases; the ``supervisors`` package composes them into a
supervised, all-or-nothing, rolling or canary change:

1. ``await node.suspend(pid)``: the current message finishes, new ones queue;
2. ``change = node.prepare_code_change(pid, component)``: the old instance's
   ``snapshot``, a new instance of ``component`` and its ``upgrade(from-version, state)``;
   the old instance is untouched, so nothing is lost if this raises. The new instance
   can be made before step 1 (``node.preload_code_change``, as OTP loads the new code
   before ``sys:suspend``), so that the pause holds only the state's move;
3. ``change.commit()`` swaps the new instance in under the same pid and name, or
   ``change.rollback()`` drops it;
4. ``node.resume(pid)``.

Only the swap needs the process suspended: a caller that cares about the length of the
pause (the supervised change) calls ``change.swap()`` in step 3 and, once the process is
resumed, ``change.announce()`` (the ``upgrade`` event) and ``change.release_old()``
(closing the replaced instance), which is what ``commit()`` does in one go.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import UpgradeFailed
from ._host._instance import GuestError, GuestInstance, GuestTrap, free_spent
from ._reasons import ExitReason
from ._wasm import GuestHost, WasmBehaviour, _TrioBridge

if TYPE_CHECKING:
    from ._process import Process
    from ._wasm import Component


@attrs.define(eq=False)
class CodeChange:
    """A prepared change of one process: commit it or roll it back, exactly once."""

    proc: Process
    behaviour: WasmBehaviour
    component: Component
    new_instance: GuestInstance
    from_version: str
    state_size: int
    prepared_at: float
    done: bool = False
    swapped: bool = False
    """Committed (the new instance runs), as opposed to rolled back."""
    announced: bool = False
    old_instance: GuestInstance | None = None
    spent: list[Any] = attrs.field(factory=list)
    """With ``defer_free``, the values a large state moved into ``upgrade`` in: freed
    with the old instance (after the resume) or on rollback."""

    @property
    def to_version(self) -> str:
        return self.component.version

    def commit(self, close_old: bool = True) -> None:
        """Swap the new instance in and announce it. The old one is closed now, or with
        ``close_old=False`` by :meth:`release_old` later (after the process is resumed:
        closing a store is not free, and need not lengthen the pause)."""
        self.swap()
        if close_old:
            self.release_old()
        self.announce()

    def swap(self) -> None:
        """The part of :meth:`commit` that needs the process suspended: the new instance
        in, under the same pid and name. Follow it with :meth:`announce` and
        :meth:`release_old` once the process is resumed."""
        if self.done:
            raise RuntimeError("this code change is already committed or rolled back")
        self.done = self.swapped = True
        behaviour = self.behaviour
        self.old_instance = behaviour.instance
        behaviour.instance = self.new_instance
        component = self.component
        behaviour.component_obj = component
        behaviour.component = component.name
        behaviour.version = component.version

    def announce(self) -> None:
        """Emit the ``upgrade`` event of a swapped change (once). Observers run on the
        node's thread, so emitted right after the resume it still comes before the
        process takes its next message."""
        if not self.swapped or self.announced:
            return
        self.announced = True
        proc = self.proc
        proc.node.events.emit(
            "upgrade", pid=proc.pid, name=proc.name, component=self.component.name,
            version=self.component.version,
            data={"from_version": self.from_version, "state_bytes": self.state_size},
        )

    def release_old(self) -> None:
        """Close the instance a committed change replaced and free the values the state
        moved in (idempotent)."""
        free_spent(self.spent)
        if self.old_instance is not None:
            self.old_instance.close()
            self.old_instance = None

    def rollback(self) -> None:
        """Drop the new instance; the old one goes on as if nothing happened."""
        if self.done:
            return
        self.done = True
        free_spent(self.spent)
        self.new_instance.close()


@attrs.define(eq=False)
class PreloadedCode:
    """A new instance of ``component`` made for one process before it is suspended.
    :func:`prepare` takes it over; one that is not used must be closed."""

    proc: Process
    component: Component
    instance: GuestInstance | None

    def close(self) -> None:
        """Drop the instance if no change took it (idempotent)."""
        if self.instance is not None:
            self.instance.close()
            self.instance = None


def _where(proc: Process) -> str:
    """How an error names the process (its text only built when there is an error)."""
    return proc.name or str(proc.pid)


def _wasm_behaviour(proc: Process) -> WasmBehaviour:
    behaviour = proc.behaviour
    if not proc.alive:
        raise UpgradeFailed(_where(proc), "noproc", "the process exited before it could be changed")
    if not isinstance(behaviour, WasmBehaviour) or behaviour.instance is None:
        raise UpgradeFailed(_where(proc), "not_wasm", "only WASM processes can change code")
    return behaviour


def _new_instance(proc: Process, behaviour: WasmBehaviour, component: Component) -> GuestInstance:
    # The new instance serves the same process as the old one: it gets the same host
    # functions (they hold nothing of an instance), one thing less to build.
    assert behaviour.instance is not None
    host: object = behaviour.instance.host
    if host is None:
        host = GuestHost(proc, behaviour)
        if behaviour.threaded:
            host = _TrioBridge(host, behaviour.trio_token)  # type: ignore[arg-type]
    try:
        return GuestInstance(component._compiled, host, behaviour.limits,  # type: ignore[arg-type]
                             interruptible=behaviour.threaded, wasi=behaviour.capabilities.wasi,
                             watch=behaviour.watch_starting if behaviour.threaded else None)
    except GuestTrap as exc:
        raise UpgradeFailed(_where(proc), exc.kind, f"the new version trapped while instantiating: {exc}") from None
    except Exception as exc:
        # Whatever else refuses the new instance (a limit, the engine) is a failed change
        # like a trap: the process keeps its old version.
        raise UpgradeFailed(_where(proc), "error",
                            f"the new version could not be instantiated: {type(exc).__name__}: {exc}") from None
    finally:
        behaviour.starting = None


def preload(proc: Process, component: Component) -> PreloadedCode:
    """The new instance a code change of ``proc`` to ``component`` will use, made now
    (the process need not be suspended). Raises :class:`UpgradeFailed` as
    :func:`prepare` does for the new version's instantiation."""
    return PreloadedCode(proc, component, _new_instance(proc, _wasm_behaviour(proc), component))


def prepare(proc: Process, component: Component, *, defer_free: bool = False,
            preloaded: PreloadedCode | None = None) -> CodeChange:
    """Snapshot ``proc`` and migrate its state into a new instance of ``component``.

    The process must be suspended. Raises :class:`UpgradeFailed` naming the process and
    the cause; the old instance keeps running with its state untouched, except when the
    old instance itself traps in ``snapshot``: then the process crashes with that reason,
    as on any trap, and its supervisor handles it.

    The state crosses into ``upgrade`` as a list of 32 bytes per byte of state; freeing
    it takes ~6 ms at 1 MiB. With ``defer_free`` the change keeps it (from 1 MiB on, see
    ``SPENT_MIN``) until :meth:`CodeChange.release_old` or its rollback, so that this
    happens after the resume; a caller holding many changes at once should not ask.

    With ``preloaded`` (from :func:`preload` for this process and component) its
    instance is used instead of making one, and taken over once the snapshot is done.
    """
    behaviour = _check_prepare(proc, component, preloaded)
    try:
        return _migrate(proc, behaviour, component, defer_free, preloaded)
    except _SnapshotTrapped as exc:
        proc.die(exc.reason)
        raise exc.failure from None


def _check_prepare(proc: Process, component: Component, preloaded: PreloadedCode | None) -> WasmBehaviour:
    if preloaded is not None and (preloaded.proc is not proc or preloaded.component is not component
                                  or preloaded.instance is None):
        raise ValueError("the preloaded code is for another process or component, or was already used")
    behaviour = _wasm_behaviour(proc)
    assert behaviour.instance is not None
    if not proc.suspended:
        raise UpgradeFailed(_where(proc), "not_suspended", "suspend the process first")
    return behaviour


class _SnapshotTrapped(Exception):
    """The old version trapped in ``snapshot``: the process must die (on the trio thread)."""

    def __init__(self, reason: ExitReason, failure: UpgradeFailed) -> None:
        super().__init__(failure)
        self.reason = reason
        self.failure = failure


def _migrate(proc: Process, behaviour: WasmBehaviour, component: Component, defer_free: bool,
             preloaded: PreloadedCode | None) -> CodeChange:
    """The guest part of :func:`prepare`: touches no node state, so that it can run in a
    threaded guest's worker thread."""
    assert behaviour.instance is not None
    from_version = behaviour.version
    try:
        state = behaviour.instance.snapshot()
    except GuestTrap as exc:
        raise _SnapshotTrapped(
            ExitReason(exc.kind, f"snapshot: {exc}"),
            UpgradeFailed(_where(proc), exc.kind, f"the old version trapped in snapshot: {exc}")) from None
    started = time.perf_counter()
    if preloaded is not None:
        instance, preloaded.instance = preloaded.instance, None
        assert instance is not None
    else:
        instance = _new_instance(proc, behaviour, component)
    spent: list[Any] = []  # upgrade's arguments (see defer_free)
    behaviour.starting = instance  # a kill during upgrade reaches it
    if behaviour.killed:
        instance.interrupt()
    try:
        instance.upgrade(from_version, state, spent)
    except BaseException as exc:
        instance.close()
        free_spent(spent)
        if isinstance(exc, GuestError):
            raise UpgradeFailed(_where(proc), "error", f"upgrade returned an error: {exc}") from None
        if isinstance(exc, GuestTrap):
            raise UpgradeFailed(_where(proc), exc.kind, f"upgrade trapped: {exc}") from None
        raise
    finally:
        behaviour.starting = None
    if not defer_free:
        free_spent(spent)
    return CodeChange(proc, behaviour, component, instance, from_version, len(state), started, spent=spent)


async def preload_async(proc: Process, component: Component) -> PreloadedCode:
    """:func:`preload`, with a threaded guest's instantiation run in a worker thread
    (the node keeps serving; a kill of the process interrupts it)."""
    behaviour = _wasm_behaviour(proc)
    if not behaviour.threaded:
        return preload(proc, component)
    instance = await behaviour.run_guest_part(_new_instance, proc, behaviour, component)
    return PreloadedCode(proc, component, instance)


async def prepare_async(proc: Process, component: Component, *, defer_free: bool = False,
                        preloaded: PreloadedCode | None = None) -> CodeChange:
    """:func:`prepare`, with a threaded guest's ``snapshot``, the new instance and its
    ``upgrade`` run in a worker thread: the node keeps serving meanwhile, host calls
    from ``upgrade`` work, and a kill of the process interrupts whichever runs (the
    change then fails with cause ``killed``). An inline guest's change is :func:`prepare`."""
    behaviour = _check_prepare(proc, component, preloaded)
    if not behaviour.threaded:
        return prepare(proc, component, defer_free=defer_free, preloaded=preloaded)
    try:
        return await behaviour.run_guest_part(_migrate, proc, behaviour, component, defer_free, preloaded)
    except _SnapshotTrapped as exc:
        proc.die(exc.reason)
        raise exc.failure from None
