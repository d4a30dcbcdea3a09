"""Spawning: what can be spawned (components, Python actors), and starting a process in
its task, including the task a parked name hands to the next process under it."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from ._actor import Actor, PythonBehaviour
from ._capabilities import NO_CAPABILITIES, Capabilities
from ._checks import InvalidType, finite_seconds, positive_int
from ._codec import encode
from ._errors import ActorError, SpawnFailed
from ._limits import Limits
from ._mailbox import Mailbox
from ._names import Names
from ._pid import Pid
from ._process import Process, current_process
from ._reasons import KILLED, NOPROC, SHUTDOWN
from ._signals import Signals
from ._wakeup import OneShot, Wakeup
from ._wasm import Component, WasmBehaviour


class _Heir(Wakeup):
    """The task of a process that died with its mailbox parked, waiting to run the next
    process started under its name (set in ``proc``; None: the name was given up). A
    supervised restart then reuses a task instead of ending one and starting one.
    ``started`` is set for a process whose ``init`` has yet to run (an async one)."""

    __slots__ = ("args", "proc", "started")

    def __init__(self) -> None:
        super().__init__()
        self.proc: Process | None = None
        self.args = b""
        self.started: _Started | None = None


class _Started(OneShot):
    """Tells a spawner that the process it handed to an heir has run ``init``, as
    ``task_status`` does for ``nursery.start`` (fired either way: check ``proc.started``)."""

    __slots__ = ()

    def started(self, value: object = None) -> None:
        self.fire()


ComponentLike = Any  # Component | path | bytes | Actor class / factory | registered name


class Spawning(Signals, Names):
    """Components and spawning (a mixin of :class:`~airssys_actors.Node`)."""

    # Set by Node.__init__.
    name: str
    mailbox_capacity: int
    limits: Limits
    max_message: int
    _components: dict[str, Component]
    _ids: itertools.count[int]
    _heirs: dict[str, _Heir]  # type: ignore[assignment]  # Names sees them as Wakeups

    if TYPE_CHECKING:
        def _require_open(self) -> trio.Nursery: ...

    def load(self, source: str | os.PathLike[str] | bytes, *, version: str | None = None, name: str | None = None) -> Component:
        """Load a component and register it under its name, so guests can spawn it."""
        component = Component.load(source, version=version, name=name)
        self.register_component(component)
        return component

    def register_component(self, component: Component, name: str | None = None) -> None:
        self._components[name or component.name] = component

    def components(self) -> dict[str, Component]:
        return dict(self._components)

    def _behaviour(self, component: ComponentLike, limits: Limits | None, capabilities: Capabilities | None,
                   threaded: bool = False) -> Any:
        if isinstance(component, type) and issubclass(component, Actor):
            return PythonBehaviour(component, component.__name__)
        if isinstance(component, Actor):
            raise TypeError("pass the Actor class or a factory, not an instance: each spawn needs a fresh actor")
        if callable(component) and not isinstance(component, (str, bytes, os.PathLike, Component)):
            return PythonBehaviour(component, getattr(component, "__name__", "actor"))
        if isinstance(component, str) and component in self._components:
            component = self._components[component]
        elif isinstance(component, (str, os.PathLike, bytes, bytearray)):
            if isinstance(component, str) and Path(component).suffix not in (".wat", ".wasm") and not Path(component).exists():
                raise ActorError(f"unknown component {component!r}: not a registered name nor a .wat/.wasm path")
            component = Component.load(component)
        if not isinstance(component, Component):
            raise TypeError(f"cannot spawn {component!r}")
        return WasmBehaviour(component, limits or self.limits, capabilities or NO_CAPABILITIES, threaded=threaded)

    async def spawn(
        self,
        component: ComponentLike,
        *,
        name: str | None = None,
        args: Any = None,
        link: bool = False,
        monitor: bool = False,
        trap_exits: bool = False,
        mailbox: str = "drop",
        mailbox_capacity: int | None = None,
        limits: Limits | None = None,
        capabilities: Capabilities | None = None,
        threaded: bool = False,
        node: str | None = None,
        timeout: float = 5.0,
    ) -> Pid:
        """Start a process and return its pid once its ``init`` has succeeded.

        ``component`` is a loaded :class:`Component`, a path to ``.wat``/``.wasm``, raw
        bytes, the name of a registered component, or an :class:`Actor` subclass.
        ``link=True`` links it to the calling process (only from inside a process).
        ``mailbox="keep"`` keeps its name and queued messages when it exits, for a
        process started under the same name to take over (see :meth:`release_name`).
        ``threaded=True`` runs a WASM guest's calls in a worker thread, so a long
        handler does not hold the node and ``kill`` interrupts it.

        ``node="b"`` starts it on node ``b`` of this node's cluster: ``component`` is then
        the name of a component registered there, and ``link`` / ``monitor`` link or
        monitor atomically across nodes; ``timeout`` bounds the wait for its answer.

        Raises:
            SpawnFailed: ``init`` returned an error or trapped (the reason says which).
            NameTaken, InvalidComponent, ComponentWorldMismatch, UnencodableMessage.
        """
        nursery = self._require_open()
        parent = current_process.get()
        if node is not None and node != self.name:
            return await self._spawn_remote(node, component, name=name, args=args, link=link, monitor=monitor,
                                            trap_exits=trap_exits, timeout=timeout,
                                            local_only=(mailbox != "drop", mailbox_capacity, limits, capabilities, threaded))
        if (link or monitor) and parent is None:
            raise ValueError("link=True and monitor=True refer to the calling process: call spawn from inside a process")
        if mailbox not in ("drop", "keep"):
            raise ValueError(f"mailbox must be 'drop' or 'keep', got {mailbox!r}")
        if mailbox_capacity is not None:
            mailbox_capacity = positive_int("mailbox_capacity", mailbox_capacity, maximum=sys.maxsize)
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidType("limits", limits, "a Limits or None")
        if capabilities is not None and not isinstance(capabilities, Capabilities):
            raise InvalidType("capabilities", capabilities, "a Capabilities or None")
        if name is not None and not isinstance(name, str):
            raise InvalidType("name", name, "a str or None")
        payload = encode(args, self.max_message)
        behaviour = self._behaviour(component, limits, capabilities, threaded)
        proc = self._make_process(behaviour, name, trap_exits, mailbox == "keep", mailbox_capacity, parent)
        if link and parent is not None:
            self._link_pair(parent, proc)
        if monitor and parent is not None:
            self._add_monitor(parent, proc)
        if behaviour.is_async:
            heir = self._heirs.pop(name, None) if name is not None else None
            if heir is None:
                await nursery.start(self._run_tasks, proc, payload, False)
            else:
                await self._hand_over(heir, proc, payload)
        else:
            # A synchronous init (an inline guest) runs here; only the loop needs a task.
            await self._start_inline(nursery, proc, payload)
        return proc.pid

    async def _spawn_remote(self, node: str, component: ComponentLike, *, name: str | None, args: Any, link: bool,
                            monitor: bool, trap_exits: bool, timeout: float, local_only: tuple[Any, ...]) -> Pid:
        if self._remote is None:
            raise ActorError(f"node={node!r}: this node is not in a cluster (Node(cluster=...))")
        if not isinstance(component, str):
            raise InvalidType("component", component, "the name of a component registered on that node")
        if any(local_only[1:]) or local_only[0]:
            raise ActorError("mailbox, mailbox_capacity, limits, capabilities and threaded are the remote node's to set")
        if name is not None and not isinstance(name, str):
            raise InvalidType("name", name, "a str or None")
        timeout = finite_seconds("timeout", timeout)
        return await self._remote.spawn(node, component, name=name, args=encode(args, self.max_message), link=link,
                                        monitor=monitor, trap_exits=trap_exits, timeout=timeout)

    async def _spawn_bytes(self, component: str, *, name: str | None, args: bytes, trap_exits: bool) -> Pid:
        """Start a registered component with msgpack ``args`` as they came (a remote spawn)."""
        nursery = self._require_open()
        behaviour = self._behaviour(component, None, None, False)
        proc = self._make_process(behaviour, name, trap_exits, False, None, None)
        await self._start_inline(nursery, proc, args)
        return proc.pid

    async def _start_inline(self, nursery: trio.Nursery, proc: Process, payload: bytes) -> None:
        # A cancellation point, but not a scheduling point: spawning many processes in a
        # row does not pay a scheduler pass each (their tasks start at the next one).
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            proc._terminate(SHUTDOWN)  # cancelled before init: it never existed for anyone
            raise
        failure = proc.init_inline(payload)
        if failure is not None:
            proc._terminate(failure)
            raise SpawnFailed(failure)
        heir = self._heirs.pop(proc.name, None) if proc.name is not None else None
        if heir is not None:
            heir.proc, heir.args = proc, payload
            heir.wake()
        else:
            nursery.start_soon(self._run_tasks, proc, payload, True)

    async def _hand_over(self, heir: _Heir, proc: Process, payload: bytes) -> None:
        """Start an async process in the waiting task ``heir``; return once its ``init``
        succeeded, or raise SpawnFailed, as ``nursery.start`` would."""
        started = _Started()
        heir.proc, heir.args, heir.started = proc, payload, started
        heir.wake()
        try:
            await started.wait()
        except BaseException:
            # Cancelled while it starts: nursery.start would cancel the task it starts.
            proc.exit_signal(None, KILLED, untrappable=True)
            raise
        if not proc.started:
            raise SpawnFailed(proc.exit_reason or NOPROC)

    async def _run_tasks(self, proc: Process, args: bytes, initialized: bool,
                         task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The task of a process, and then of each process started under its name while
        its mailbox is parked (as a supervisor restarts it)."""
        status: Any = task_status
        report_init_failure = not initialized  # started with nursery.start
        while True:
            try:
                await proc.run(args, report_init_failure, initialized, task_status=status)
            finally:
                if isinstance(status, _Started):
                    status.fire()  # the spawner waits: init failed, or was reported already
            name = proc.name
            if name is None or self._parked.get(name) is not proc.mailbox:
                return
            heir = self._heirs[name] = _Heir()
            try:
                await heir.wait()
            finally:
                if self._heirs.get(name) is heir:
                    del self._heirs[name]
            if heir.proc is None:
                return
            proc, args, report_init_failure = heir.proc, heir.args, False
            initialized = heir.started is None
            status = trio.TASK_STATUS_IGNORED if heir.started is None else heir.started

    def _spawn_from_guest(self, parent: Process, component: str, args: bytes) -> Pid:
        # Synchronous: the child's init runs inside the parent's host call, so the parent
        # gets either the pid of a started process or err with the reason init failed.
        nursery = self._require_open()
        if component not in self._components:
            raise ActorError(f"unknown component {component!r}")
        # The child gets no capabilities it was not given, and no looser limits than its parent.
        limits = getattr(parent.behaviour, "limits", self.limits)
        behaviour = WasmBehaviour(self._components[component], limits, NO_CAPABILITIES)
        proc = self._make_process(behaviour, None, False, False, None, parent.pid)
        failure = proc.init_inline(args)
        if failure is not None:
            proc._terminate(failure)
            raise SpawnFailed(failure)
        parent.children.add(proc.pid)
        nursery.start_soon(self._run_tasks, proc, args, True)
        return proc.pid

    def _make_process(self, behaviour: Any, name: str | None, trap_exits: bool, keep: bool,
                      capacity: int | None, parent: Process | Pid | None) -> Process:
        pid = Pid(self.node_id, next(self._ids))
        parked = None
        if name is not None:
            # A parked mailbox is adopted by the next process under its name.
            parked = self._parked.pop(name, None)
            if parked is not None:
                self.registry.unregister(name)
                parked.reopen()
            self.registry.register(name, pid)
        mailbox = parked if parked is not None else Mailbox(capacity or self.mailbox_capacity)
        mailbox.max_message = getattr(behaviour, "limits", self.limits).max_message
        parent_pid = parent.pid if isinstance(parent, Process) else parent
        proc = Process(self, pid, behaviour, name=name, mailbox=mailbox, trap_exits=trap_exits,
                       keep_mailbox=keep, parent=parent_pid)
        self._processes[pid] = proc
        return proc

    def _on_started(self, proc: Process) -> None:
        self.events.emit("spawn", pid=proc.pid, name=proc.name, component=proc.behaviour.component,
                         version=proc.behaviour.version,
                         data={"parent": None if proc.parent is None else str(proc.parent)})
