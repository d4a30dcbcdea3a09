"""The node: one trio nursery that owns every process, the registry, timers, pending
calls, dead letters and the event stream.

Every message leaving a process goes through :meth:`Node._deliver_nowait` (or its
awaiting twin), which resolves the address and puts the envelope in a mailbox: the one
place a transport to other nodes will hook in.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

import attrs
import trio

from ._actor import Actor, PythonBehaviour
from ._capabilities import NO_CAPABILITIES, Capabilities
from ._checks import InvalidType, finite_seconds, positive_int, whole_number
from ._codechange import CodeChange, PreloadedCode
from ._codechange import preload as preload_code_change
from ._codechange import prepare as prepare_code_change
from ._codechange import preload_async, prepare_async
from ._codec import decode, encode
from ._bounded import RECORD_OVERHEAD, BoundedMap
from ._deadletters import DEAD_LETTER_BYTES, DeadLetter, DeadLetters
from ._errors import (
    ActorError,
    CallFailed,
    CallTimeout,
    MailboxClosed,
    MailboxFull,
    MessageTooLarge,
    NodeClosed,
    NoSuchProcess,
    SpawnFailed,
    UpgradeFailed,
)
from ._events import EventBus, Subscription
from .faults import Faults
from ._host._engine import engine_host
from ._limits import MAX_MESSAGE_LIMIT, Limits
from ._mailbox import Mailbox
from ._message import KIND_NAME, Envelope, Kind
from ._pid import Pid
from ._process import Process, current_process
from ._reasons import KILLED, NOPROC, SHUTDOWN, ExitReason, parse
from ._registry import LocalRegistry, Registry
from ._timers import TimerService
from ._reaper import Reaper
from ._wakeup import OneShot, Wakeup
from ._wasm import Component, WasmBehaviour


NODE_STOPPED = "node_stopped"
"""The dead-letter reason of a message still waiting on a timer (``send_after``, an
injected delay) when its node stopped."""

#: Exit reasons a node remembers for ``wait`` and ``exit_reason`` after the process is
#: gone: the most recent ones, at most this many and this many bytes.
EXIT_RECORDS = 10_000
EXIT_RECORD_BYTES = 4 << 20



def _mark_answered(replier: Process, ref: int) -> None:
    """Note that the call ``replier`` is handling right now has its answer."""
    current = replier.current
    if current is not None and current.ref == ref and current.kind == Kind.CALL:
        replier.answered = ref

class _CallWaiter(OneShot):
    """A caller in Python awaiting a reply (fired by the reply, a failure or the timeout)."""

    __slots__ = ("error", "payload", "target")

    def __init__(self, target: object) -> None:
        super().__init__()
        self.payload: bytes | None = None
        self.error: Exception | None = None
        self.target = target


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


class _RequestWaiter:
    """A process awaiting the reply to its own ``request`` (answered by a message)."""

    __slots__ = ("deadline", "proc", "target", "timer")

    def __init__(self, proc: Process, target: object, deadline: float) -> None:
        self.proc = proc
        self.timer = 0
        self.target = target
        self.deadline = deadline


@attrs.frozen
class NodeStatistics:
    processes: int
    parked_mailboxes: int
    pending_calls: int
    timers: int
    dead_letters: int


ComponentLike = Any  # Component | path | bytes | Actor class / factory | registered name


class Node:
    """A set of processes in one trio nursery.

    ``async with Node() as node:`` starts it; leaving the block stops every process: the
    ones started from outside any process in reverse start order (each stopping what it
    started, as a supervisor does), then whatever is left, in reverse start order. A
    process is asked to stop with reason ``shutdown`` and killed after
    ``shutdown_timeout`` seconds.
    """

    def __init__(
        self,
        name: str = "local",
        *,
        mailbox_capacity: int = 1000,
        max_message: int | None = None,
        limits: Limits | None = None,
        dead_letter_capacity: int = 10_000,
        dead_letter_bytes: int | None = DEAD_LETTER_BYTES,
        shutdown_timeout: float = 5.0,
        registry: Registry | None = None,
    ) -> None:
        # Every number is checked here, naming the parameter, so none reaches trio.
        mailbox_capacity = positive_int("mailbox_capacity", mailbox_capacity, maximum=sys.maxsize)
        if max_message is not None:
            max_message = positive_int("max_message", max_message, maximum=MAX_MESSAGE_LIMIT)
        dead_letter_capacity = whole_number("dead_letter_capacity", dead_letter_capacity, maximum=sys.maxsize)
        if dead_letter_bytes is not None:
            dead_letter_bytes = whole_number("dead_letter_bytes", dead_letter_bytes, maximum=sys.maxsize)
        shutdown_timeout = finite_seconds("shutdown_timeout", shutdown_timeout)
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidType("limits", limits, "a Limits or None")
        self.name = name
        self.mailbox_capacity = mailbox_capacity
        if limits is None:
            limits = Limits() if max_message is None else Limits(max_message=max_message)
        self.limits = limits
        #: The largest message (encoded bytes) sent from Python; defaults to the limits'.
        self.max_message = limits.max_message if max_message is None else max_message
        self.shutdown_timeout = shutdown_timeout
        self.registry: Registry = registry or LocalRegistry()
        self.events = EventBus()
        self.timers = TimerService()
        self.reaper = Reaper()
        """Releases dead processes' instances when the node is idle."""
        self._dead = DeadLetters(dead_letter_capacity, dead_letter_bytes)
        self._processes: dict[Pid, Process] = {}
        self._parked: dict[str, Mailbox] = {}
        self._heirs: dict[str, _Heir] = {}
        self._calls: dict[int, _CallWaiter | _RequestWaiter] = {}
        self._components: dict[str, Component] = {}
        self._ids = itertools.count(1)
        self._refs = itertools.count(1)
        # Bounded in bytes too: each reason's detail may be MAX_DETAIL_BYTES long.
        self._exits: BoundedMap[Pid, ExitReason] = BoundedMap(EXIT_RECORDS, EXIT_RECORD_BYTES)
        self._nursery: trio.Nursery | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self.closing = False
        self.faults = Faults(self)
        """Fault injection into this node's processes (see :mod:`airssys_actors.faults`)."""

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        stack = contextlib.AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        engine_host().acquire_ticker()
        stack.callback(engine_host().release_ticker)
        self._nursery.start_soon(self.timers.run)
        self._nursery.start_soon(self.reaper.run)
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._stack is not None and self._nursery is not None
        try:
            with trio.CancelScope(shield=True):
                await self._stop_all()
        finally:
            self.closing = True
            # Timers still pending carry messages no one will deliver now: each becomes a
            # dead letter (``node_stopped``), a delayed call's caller is told at once.
            self.timers.close()
            self._nursery.cancel_scope.cancel()
            self.events.close()
            # The nursery only holds the node's own tasks, all cancelled by now: an
            # exception from the body propagates as itself, not inside a group.
            await self._stack.__aexit__(None, None, None)
            self.reaper.close()
        return None

    async def _stop_all(self) -> None:
        self.closing = True
        for name in list(self._parked):
            self.release_name(name)
        top = [p for p in self._processes.values() if p.parent is None]
        for proc in reversed(top):
            await self._shutdown(proc, self.shutdown_timeout)
        for proc in reversed(list(self._processes.values())):
            await self._shutdown(proc, self.shutdown_timeout)

    async def _shutdown(self, proc: Process, timeout: float) -> None:
        if not proc.alive:
            return
        proc.exit_signal(None, SHUTDOWN)
        with trio.move_on_after(timeout):
            await proc.wait_done()
        if proc.alive:
            proc.exit_signal(None, KILLED, untrappable=True)
            await proc.wait_done()

    def _require_open(self) -> trio.Nursery:
        if self._nursery is None or self.closing:
            raise NodeClosed(f"node {self.name} is not running")
        return self._nursery

    # -- components -------------------------------------------------------------------

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

    # -- spawning ---------------------------------------------------------------------

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
    ) -> Pid:
        """Start a process and return its pid once its ``init`` has succeeded.

        ``component`` is a loaded :class:`Component`, a path to ``.wat``/``.wasm``, raw
        bytes, the name of a registered component, or an :class:`Actor` subclass.
        ``link=True`` links it to the calling process (only from inside a process).
        ``mailbox="keep"`` keeps its name and queued messages when it exits, for a
        process started under the same name to take over (see :meth:`release_name`).
        ``threaded=True`` runs a WASM guest's calls in a worker thread, so a long
        handler does not hold the node and ``kill`` interrupts it.

        Raises:
            SpawnFailed: ``init`` returned an error or trapped (the reason says which).
            NameTaken, InvalidComponent, ComponentWorldMismatch, UnencodableMessage.
        """
        nursery = self._require_open()
        parent = current_process.get()
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
        pid = Pid(self.name, next(self._ids))
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

    def _on_exit(self, proc: Process, reason: ExitReason) -> None:
        """Everything a process's exit implies, in one place (called once per process)."""
        pid = proc.pid
        self._processes.pop(pid, None)
        self._exits.put(pid, reason, RECORD_OVERHEAD + (0 if reason.detail is None else len(reason.detail)))
        where = proc.name or str(pid)
        text = str(reason)
        # The message it was handling when it died: a dead letter, and its caller is told.
        env = proc.current
        if env is not None:
            if env.kind == Kind.CALL:
                self._fail_call(env.ref, reason, where)
            self._dead_letter(where, env, text)
        for ref in proc.deferred:
            self._fail_call(ref, reason, where)
        for env in proc.mailbox.take_system():
            self._dead_letter(where, env, text)
        if proc.name is not None:
            if proc.keep_mailbox and not self.closing:
                self._parked[proc.name] = proc.mailbox
                # The name stays reserved while parked, so no one else can take it.
            else:
                self.registry.unregister(proc.name)
                self._drop_mailbox(where, proc.mailbox, reason)
        else:
            self._drop_mailbox(where, proc.mailbox, reason)
        for ref in proc.requests:
            self._calls.pop(ref, None)
        for timer in proc.timers:
            self.timers.cancel(timer)
        for ref, target in proc.monitors.items():
            other = self._processes.get(target)
            if other is not None:
                other.watchers.pop(ref, None)
        for ref, watcher in proc.watchers.items():
            self._down(watcher, ref, pid, reason)
        if proc.parent is not None:
            parent = self._processes.get(proc.parent)
            if parent is not None:
                parent.children.discard(pid)
        for other_pid in proc.links:
            other = self._processes.get(other_pid)
            if other is not None:
                other.links.discard(pid)
                other.exit_signal(pid, reason)
        self.events.emit("exit", pid=pid, name=proc.name, component=proc.behaviour.component,
                         version=proc.behaviour.version, reason=text,
                         data={"reason_kind": reason.kind})

    def _drop_mailbox(self, where: str, mailbox: Mailbox, reason: ExitReason) -> None:
        for env in mailbox.close():
            if env.kind == Kind.CALL:
                self._fail_call(env.ref, reason, where)
            else:
                self._dead_letter(where, env, str(reason))

    def release_name(self, name: str, reason: ExitReason = NOPROC) -> None:
        """Give up a parked mailbox: its queued calls fail and its other messages become
        dead letters with ``reason``. Does nothing if ``name`` is not parked."""
        mailbox = self._parked.pop(name, None)
        if mailbox is None:
            return
        heir = self._heirs.pop(name, None)
        if heir is not None:
            heir.wake()  # with no process to run: the task waiting on the name ends
        self.registry.unregister(name)
        self._drop_mailbox(name, mailbox, reason)

    def is_parked(self, name: str) -> bool:
        return name in self._parked

    # -- addressing and delivery ------------------------------------------------------

    def whereis(self, name: str) -> Pid | None:
        """The pid registered under ``name``, or None (also while its mailbox is parked)."""
        pid = self.registry.whereis(name)
        return pid if pid is not None and pid in self._processes else None

    def register(self, name: str, pid: Pid) -> None:
        if pid not in self._processes:
            raise NoSuchProcess(pid)
        proc = self._processes[pid]
        if proc.name is not None and proc.name != name:
            raise ActorError(f"{pid} is already registered as {proc.name!r}")
        self.registry.register(name, pid)
        proc.name = name

    def unregister(self, name: str) -> None:
        pid = self.registry.whereis(name)
        self.registry.unregister(name)
        proc = self._processes.get(pid) if pid is not None else None
        if proc is not None:
            proc.name = None

    def registered(self) -> dict[str, Pid]:
        return {n: p for n, p in self.registry.names().items() if p in self._processes}

    def _resolve(self, to: Pid | str) -> Process | None:
        if isinstance(to, Pid):
            return self._processes.get(to)
        # Names never start with "<" (see is_valid_name): only pid text needs parsing.
        pid = Pid.parse(to) if to[:1] == "<" else None
        if pid is None:
            pid = self.registry.whereis(to)
            if pid is None:
                return None
        return self._processes.get(pid)

    def _mailbox_for(self, to: Pid | str) -> Mailbox:
        proc = self._resolve(to)
        if proc is not None and proc.alive:
            return proc.mailbox
        if isinstance(to, str):
            parked = self._parked.get(to)
            if parked is not None:
                return parked
        raise NoSuchProcess(to)

    def _deliver_nowait(self, to: Pid | str, env: Envelope) -> None:
        """Put ``env`` in ``to``'s mailbox now, or raise NoSuchProcess / MailboxFull."""
        try:
            self._mailbox_for(to).put_nowait(env)
        except MailboxClosed:
            raise NoSuchProcess(to) from None

    async def _deliver(self, to: Pid | str, env: Envelope) -> None:
        """Put ``env`` in ``to``'s mailbox, waiting for room."""
        try:
            await self._mailbox_for(to).put(env)
        except MailboxClosed:
            raise NoSuchProcess(to) from None

    def _deliver_system(self, proc: Process, env: Envelope) -> None:
        mailbox = proc.mailbox
        if proc.alive and not mailbox.closed:
            if mailbox.put_system(env):
                return
            # Every system message answers something the process set up itself: one that
            # floods its own lane ends, as Erlang's system_limit, and loses nothing silently.
            self._dead_letter(proc.pid, env, "system_limit")
            proc.die(ExitReason("system_limit", f"system lane over {mailbox.system_capacity} messages"))
        else:
            self._dead_letter(proc.pid, env, "noproc")

    def _dead_letter(self, to: object, env: Envelope, reason: str) -> None:
        address = self._dead.record(to, env, reason)
        self.events.emit("dead_letter", pid=env.sender, reason=reason,
                         data={"to": address, "message_kind": KIND_NAME[env.kind], "bytes": len(env.payload)})

    def dead_letters(self) -> list[DeadLetter]:
        """The most recent dead letters (bounded), oldest first."""
        return self._dead.items()

    @property
    def dead_letter_count(self) -> int:
        """How many dead letters there have been in all."""
        return self._dead.total

    def _sender(self) -> Pid | None:
        proc = current_process.get()
        return proc.pid if proc is not None and proc.node is self else None

    # -- messaging --------------------------------------------------------------------

    async def send(self, to: Pid | str, message: Any) -> None:
        """Send ``message`` (any msgpack value); waits while the mailbox is full.

        Raises:
            NoSuchProcess, UnencodableMessage, MessageTooLarge.
        """
        payload = encode(message, self.max_message)
        await self._deliver(to, Envelope(Kind.CAST, 0, self._sender(), payload))
        self._count_out()

    def send_nowait(self, to: Pid | str, message: Any) -> None:
        """Like :meth:`send`, but raises :class:`MailboxFull` instead of waiting."""
        payload = encode(message, self.max_message)
        self._deliver_nowait(to, Envelope(Kind.CAST, 0, self._sender(), payload))
        self._count_out()

    def _count_out(self) -> None:
        proc = current_process.get()
        if proc is not None:
            proc.messages_out += 1

    async def call(self, to: Pid | str, message: Any, timeout: float = 5.0) -> Any:
        """Send ``message`` as a call and return the decoded reply.

        Raises:
            CallTimeout: no reply within ``timeout`` seconds.
            CallFailed: the process exited before replying (at once, not at the timeout).
            NoSuchProcess, UnencodableMessage, MessageTooLarge.
        """
        return decode(await self.call_bytes(to, encode(message, self.max_message), timeout))

    async def call_bytes(self, to: Pid | str, payload: bytes, timeout: float = 5.0) -> bytes:
        """:meth:`call` with msgpack bytes in and out (no encoding on this side)."""
        timeout = finite_seconds("timeout", timeout)
        if not isinstance(payload, (bytes, bytearray)):
            raise InvalidType("payload", payload, "bytes")
        if len(payload) > self.max_message:
            raise MessageTooLarge(len(payload), self.max_message)
        deadline = trio.current_time() + timeout
        ref = next(self._refs)
        waiter = _CallWaiter(to)
        env = Envelope(Kind.CALL, ref, self._sender(), payload)
        self._calls[ref] = waiter
        timer = 0
        try:
            try:
                self._deliver_nowait(to, env)
            except MailboxFull:
                # The timeout covers waiting for room in a full mailbox too.
                with trio.move_on_at(deadline) as waited:
                    await self._deliver(to, env)
                if waited.cancelled_caught:
                    raise CallTimeout(f"no reply from {to} within {timeout} s") from None
            self._count_out()
            # The node's timer heap, not a cancel scope: a call is on every hot path,
            # and a scope with a deadline costs several times more to enter and leave.
            timer = self.timers.schedule_at(deadline, waiter.fire)
            await waiter.wait()
        finally:
            self._calls.pop(ref, None)
            if timer:
                self.timers.cancel(timer)
        error = waiter.error
        if error is not None:
            # Raised without leaving a reference to it in this frame: the traceback holds
            # the frame, and frame -> error -> traceback would be a cycle for the garbage
            # collector to find, on every call that fails (every crash of a called process).
            waiter.error = None
            try:
                raise error
            finally:
                del error
        if waiter.payload is None:
            raise CallTimeout(f"no reply from {to} within {timeout} s")
        return waiter.payload

    def _complete_call(self, ref: int, payload: bytes, replier: Process) -> None:
        replier.deferred.discard(ref)
        _mark_answered(replier, ref)
        waiter = self._calls.pop(ref, None)
        if waiter is None:
            self._dead_letter("(caller gone)", Envelope(Kind.REPLY, ref, replier.pid, payload), "late_reply")
        elif isinstance(waiter, _CallWaiter):
            waiter.payload = payload
            waiter.fire()
        else:
            self.timers.cancel(waiter.timer)
            waiter.proc.requests.discard(ref)
            if trio.current_time() > waiter.deadline:
                # The timer could not fire while an inline guest held the thread: the
                # request still times out, and the reply is late.
                self._deliver_system(waiter.proc, Envelope(Kind.FAILED, ref, None, encode("timeout")))
                self._dead_letter("(caller gone)", Envelope(Kind.REPLY, ref, replier.pid, payload), "late_reply")
                return
            self._deliver_system(waiter.proc, Envelope(Kind.REPLY, ref, replier.pid, payload))

    def _fail_call(self, ref: int, reason: ExitReason, where: object) -> None:
        waiter = self._calls.pop(ref, None)
        if waiter is None:
            return
        if isinstance(waiter, _CallWaiter):
            waiter.error = CallFailed(where, reason)
            waiter.fire()
        else:
            self.timers.cancel(waiter.timer)
            waiter.proc.requests.discard(ref)
            self._deliver_system(waiter.proc, Envelope(Kind.FAILED, ref, None, encode(reason.to_wire())))

    def _fail_call_with(self, ref: int, error: Exception, replier: Process) -> None:
        """Answer a call with an error that is not an exit (e.g. its reply was too large)."""
        replier.deferred.discard(ref)
        _mark_answered(replier, ref)
        waiter = self._calls.pop(ref, None)
        if isinstance(waiter, _CallWaiter):
            waiter.error = error
            waiter.fire()
        elif isinstance(waiter, _RequestWaiter):
            self.timers.cancel(waiter.timer)
            waiter.proc.requests.discard(ref)
            self._deliver_system(waiter.proc, Envelope(Kind.FAILED, ref, replier.pid, encode(["error", str(error)])))

    def _request_from(self, proc: Process, to: str, payload: bytes, timeout: float) -> int:
        """A guest's ``request``: the reply comes back as a ``reply``/``failed`` message."""
        if len(proc.requests) >= proc.max_pending:
            raise ActorError(f"too many pending requests ({proc.max_pending})")
        ref = next(self._refs)
        waiter = _RequestWaiter(proc, to, trio.current_time() + timeout)
        self._calls[ref] = waiter
        try:
            self._deliver_nowait(to, Envelope(Kind.CALL, ref, proc.pid, payload))
        except BaseException:
            self._calls.pop(ref, None)
            raise
        proc.requests.add(ref)

        def expire() -> None:
            if self._calls.get(ref) is waiter:
                del self._calls[ref]
                proc.requests.discard(ref)
                self._deliver_system(proc, Envelope(Kind.FAILED, ref, None, encode("timeout")))

        waiter.timer = self.timers.schedule(timeout, expire)
        return ref

    # -- timers -----------------------------------------------------------------------

    def send_after(self, to: Pid | str, message: Any, delay: float) -> int:
        """Deliver ``message`` to ``to`` after ``delay`` seconds; returns a timer id.

        From inside a process, a timer addressed to that process arrives as a ``timer``
        message with that id; anything else arrives as a cast. A timer whose target is
        gone when it fires becomes a dead letter.
        """
        delay = finite_seconds("delay", delay)
        if self._nursery is None or self.timers.closed:
            raise NodeClosed(f"node {self.name} is not running")
        payload = encode(message, self.max_message)
        proc = current_process.get()
        if proc is not None and proc.node is self:
            return self._send_after_bytes(proc, to, payload, delay)
        return self.timers.schedule(delay, lambda: self._fire(None, to, 0, payload),
                                    lambda: self._timer_dropped(None, to, payload))

    def _send_after_bytes(self, proc: Process, to: Pid | str, payload: bytes, delay: float) -> int:
        holder: list[int] = []

        def fire() -> None:
            proc.timers.discard(holder[0])
            self._fire(proc, to, holder[0], payload)

        timer = self.timers.schedule(delay, fire, lambda: self._timer_dropped(proc, to, payload))
        holder.append(timer)
        proc.timers.add(timer)
        return timer

    def _fire(self, owner: Process | None, to: Pid | str, timer: int, payload: bytes) -> None:
        target = self._resolve(to)
        if owner is not None and target is owner:
            self._deliver_system(owner, Envelope(Kind.TIMER, timer, owner.pid, payload))
            return
        env = Envelope(Kind.CAST, 0, None if owner is None else owner.pid, payload)
        try:
            self._deliver_nowait(to, env)
        except (NoSuchProcess, ActorError) as exc:
            self._dead_letter(to, env, "timer_target_gone" if isinstance(exc, NoSuchProcess) else "mailbox_full")

    def _timer_dropped(self, owner: Process | None, to: Pid | str, payload: bytes) -> None:
        """The node stopped before the timer fired: its message is a dead letter."""
        self._dead_letter(to, Envelope(Kind.CAST, 0, None if owner is None else owner.pid, payload), NODE_STOPPED)

    def cancel_timer(self, timer: int) -> bool:
        """Cancel a timer; False if it already fired or never existed."""
        proc = current_process.get()
        if proc is not None:
            proc.timers.discard(timer)
        return self.timers.cancel(timer)

    # -- links, monitors, exits -------------------------------------------------------

    def _caller(self, what: str) -> Process:
        proc = current_process.get()
        if proc is None or proc.node is not self:
            raise ActorError(f"{what} links or monitors the calling process: call it from inside a process")
        return proc

    def link(self, target: Pid | str) -> None:
        """Link the calling process with ``target``. If ``target`` is not alive the caller
        gets an exit signal with reason ``noproc`` (a message if it traps exits)."""
        self._link(self._caller("link"), target)

    def _link(self, proc: Process, target: Pid | str) -> None:
        other = self._resolve(target)
        if other is None or not other.alive:
            proc.exit_signal(Pid.parse(str(target)) if isinstance(target, str) else target, NOPROC)
            return
        self._link_pair(proc, other)

    def _link_pair(self, a: Process | Pid, b: Process) -> None:
        pa = a if isinstance(a, Process) else self._processes[a]
        if pa is b:
            return
        pa.links.add(b.pid)
        b.links.add(pa.pid)

    def unlink(self, target: Pid | str) -> None:
        proc = self._caller("unlink")
        other = self._resolve(target)
        if other is not None:
            other.links.discard(proc.pid)
            proc.links.discard(other.pid)

    def monitor(self, target: Pid | str) -> int:
        """Monitor ``target`` from the calling process: its exit arrives as a ``down``
        message with the returned ref (at once, reason ``noproc``, if it is not alive)."""
        return self._monitor(self._caller("monitor"), target)

    def _monitor(self, proc: Process, target: Pid | str) -> int:
        # A DOWN still queued counts as a monitor held: monitoring dead processes in a
        # loop (each answered at once) is capped like monitoring live ones.
        if len(proc.monitors) + proc.mailbox.downs >= proc.max_pending:
            raise ActorError(f"too many monitors ({proc.max_pending})")
        other = self._resolve(target)
        if other is None or not other.alive:
            ref = next(self._refs)
            pid = target if isinstance(target, Pid) else Pid.parse(target)
            self._down(proc.pid, ref, pid, NOPROC)
            return ref
        return self._add_monitor(proc, other)

    def _add_monitor(self, watcher: Process | Pid, target: Process) -> int:
        ref = next(self._refs)
        wpid = watcher.pid if isinstance(watcher, Process) else watcher
        target.watchers[ref] = wpid
        if isinstance(watcher, Process):
            watcher.monitors[ref] = target.pid
        return ref

    def demonitor(self, ref: int) -> None:
        proc = self._caller("demonitor")
        target = proc.monitors.pop(ref, None)
        other = self._processes.get(target) if target is not None else None
        if other is not None:
            other.watchers.pop(ref, None)

    def _down(self, watcher: Pid | None, ref: int, pid: Pid | None, reason: ExitReason) -> None:
        if watcher is None:
            return
        env = Envelope(Kind.DOWN, ref, pid, encode(reason.to_wire()))
        proc = self._processes.get(watcher)
        if proc is None:
            self._dead_letter(watcher, env, "noproc")  # a signal to a dead process
            return
        proc.monitors.pop(ref, None)
        self._deliver_system(proc, env)

    async def exit(self, pid: Pid | str, reason: str | ExitReason = "shutdown") -> None:
        """Send an exit signal (Erlang's ``exit/2``): a process trapping exits gets it as a
        message; otherwise it exits with ``reason`` (``normal`` is ignored, ``killed`` acts
        like :meth:`kill`). Raises NoSuchProcess for a dead target."""
        proc = self._resolve(pid)
        if proc is None or not proc.alive:
            raise NoSuchProcess(pid)
        why = reason if isinstance(reason, ExitReason) else parse(reason)
        proc.exit_signal(self._sender(), why, untrappable=why == KILLED)
        await trio.lowlevel.checkpoint()

    def kill(self, pid: Pid | str) -> None:
        """End the process at once with reason ``killed``; it cannot trap this."""
        proc = self._resolve(pid)
        if proc is None or not proc.alive:
            raise NoSuchProcess(pid)
        proc.exit_signal(self._sender(), KILLED, untrappable=True)

    async def wait(self, pid: Pid | str) -> ExitReason:
        """Wait for the process to exit and return its reason (``noproc`` for an unknown
        pid; the reason of a recently exited one)."""
        proc = self._resolve(pid)
        if proc is None:
            key = pid if isinstance(pid, Pid) else Pid.parse(pid)
            return self._exits.get(key, NOPROC) if key is not None else NOPROC
        await proc.wait_done()
        assert proc.exit_reason is not None
        return proc.exit_reason

    def exit_reason(self, pid: Pid) -> ExitReason | None:
        """The reason a recently exited process ended with, or None if alive/unknown."""
        return self._exits.get(pid)

    # -- code change ------------------------------------------------------------------

    async def suspend(self, pid: Pid | str) -> None:
        """Return once ``pid`` is between two messages; it takes none until
        :meth:`resume`. Messages sent meanwhile queue (within the mailbox bound), so
        senders may wait. Raises NoSuchProcess if it is not alive (or dies meanwhile)."""
        proc = self._resolve(pid)
        if proc is None or not proc.alive:
            raise NoSuchProcess(pid)
        await proc.suspend()
        if not proc.alive:
            raise NoSuchProcess(pid)

    def resume(self, pid: Pid | str) -> None:
        """Let a suspended process take messages again (no-op if it has exited)."""
        proc = self._resolve(pid)
        if proc is not None:
            proc.resume()

    def preload_code_change(self, pid: Pid | str, component: Component) -> PreloadedCode:
        """Make the new instance a code change of ``pid`` to ``component`` will use, before
        the process is suspended (as OTP loads new code before ``sys:suspend``): the
        pause then holds only the state's move. Pass it to :meth:`prepare_code_change`,
        or ``close()`` it if the change does not happen.

        Raises:
            UpgradeFailed: the process is gone or not WASM, or the new version trapped
            while instantiating.
        """
        return preload_code_change(self._require_process(pid), component)

    def prepare_code_change(self, pid: Pid | str, component: Component, *,
                            defer_free: bool = False, preloaded: PreloadedCode | None = None) -> CodeChange:
        """Migrate a suspended WASM process's state into a new instance of ``component``
        (its ``snapshot``, then the new one's ``upgrade``); commit or roll back the result.
        ``defer_free`` leaves freeing the values the state moved in to the change's
        ``release_old`` (after the resume) or rollback. ``preloaded`` (from
        :meth:`preload_code_change`) supplies the new instance.

        Raises:
            UpgradeFailed: naming the process and the cause; the old version still runs.
        """
        return prepare_code_change(self._require_process(pid), component, defer_free=defer_free,
                                   preloaded=preloaded)

    async def preload_code_change_async(self, pid: Pid | str, component: Component) -> PreloadedCode:
        """:meth:`preload_code_change`; for a threaded guest the new instance is made in
        a worker thread, so that the node keeps serving meanwhile and a kill reaches it."""
        return await preload_async(self._require_process(pid), component)

    async def prepare_code_change_async(self, pid: Pid | str, component: Component, *, defer_free: bool = False,
                                        preloaded: PreloadedCode | None = None) -> CodeChange:
        """:meth:`prepare_code_change`; for a threaded guest ``snapshot``, the new instance
        and ``upgrade`` run in a worker thread: the node keeps serving meanwhile, the
        guest's host calls work, and a kill of the process interrupts them (the change
        fails with cause ``killed``). An inline guest's change runs as with the sync one.

        Raises:
            UpgradeFailed: naming the process and the cause.
        """
        return await prepare_async(self._require_process(pid), component, defer_free=defer_free,
                                   preloaded=preloaded)

    def _require_process(self, pid: Pid | str) -> Process:
        proc = self._resolve(pid)
        if proc is None:
            raise UpgradeFailed(str(pid), "noproc", "no such process")
        return proc

    # -- introspection ----------------------------------------------------------------

    def is_alive(self, pid: Pid | str) -> bool:
        proc = self._resolve(pid)
        return proc is not None and proc.alive

    def processes(self) -> list[dict[str, Any]]:
        """A snapshot of every live process, in start order."""
        return [p.info() for p in self._processes.values()]

    def process_info(self, pid: Pid | str) -> dict[str, Any]:
        proc = self._resolve(pid)
        if proc is None:
            raise NoSuchProcess(pid)
        return proc.info()

    def pids(self) -> list[Pid]:
        return list(self._processes)

    def subscribe(self, kinds: set[str] | None = None, maxlen: int = 100_000) -> Subscription:
        """Subscribe to the event stream (``kinds`` filters, e.g. ``{"exit"}``); ``maxlen``
        (an int >= 1) bounds how far it may fall behind before the oldest are dropped."""
        return self.events.subscribe(kinds, positive_int("maxlen", maxlen))

    def statistics(self) -> NodeStatistics:
        return NodeStatistics(
            processes=len(self._processes),
            parked_mailboxes=len(self._parked),
            pending_calls=len(self._calls),
            timers=len(self.timers),
            dead_letters=self._dead.total,
        )

    # -- running a node ---------------------------------------------------------------

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a helper task in the node's nursery (it is cancelled when the node stops)."""
        self._require_open().start_soon(fn, *args)

    async def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Like :meth:`start_soon`, but wait for the task's ``task_status.started(value)``
        and return that value (``trio.Nursery.start``)."""
        return await self._require_open().start(fn, *args)

