"""The node: one trio nursery that owns every process, and what the node holds (the
registry, timers, pending calls, dead letters, the event stream).

:class:`Node` owns its state and its lifecycle, and what a process's exit implies
across all of them; each other seam is a mixin in a module of its own: delivery
(``_delivery``: addresses, mailboxes, dead letters: where a transport hooks in),
sending and timers (``_sending``), calls (``_calls``), links, monitors and exits
(``_signals``), names and parked mailboxes (``_names``), spawning (``_spawning``),
code change (``_changes``) and introspection (``_introspection``).
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import trio

from ._bounded import RECORD_OVERHEAD, BoundedMap
from ._changes import CodeChanges
from ._checks import InvalidType, finite_seconds, positive_int, whole_number
from ._clusterconfig import ClusterConfig, check_token
from ._deadletters import DEAD_LETTER_BYTES, DeadLetters
from ._errors import NodeClosed
from ._events import EventBus
from .faults import Faults
from ._host._engine import engine_host
from ._introspection import Introspection
from ._limits import MAX_MESSAGE_LIMIT, Limits
from ._mailbox import Mailbox
from ._message import Kind
from ._pid import Pid
from ._process import Process
from ._reasons import KILLED, SHUTDOWN, ExitReason
from ._registry import LocalRegistry, Registry
from ._sending import Sending
from ._spawning import Spawning
from ._timers import TimerService
from ._reaper import Reaper
from ._wasm import Component

if TYPE_CHECKING:
    from ._calls import RemoteCaller, _CallWaiter, _RequestWaiter
    from ._remote import Remote
    from ._spawning import _Heir


#: Exit reasons a node remembers for ``wait`` and ``exit_reason`` after the process is
#: gone: the most recent ones, at most this many and this many bytes.
EXIT_RECORDS = 10_000
EXIT_RECORD_BYTES = 4 << 20


class Node(Spawning, Sending, CodeChanges, Introspection):
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
        cluster: str | ClusterConfig | None = None,
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
        if cluster is not None:
            # A plain URL is a config with every other field at its default.
            config = cluster if isinstance(cluster, ClusterConfig) else ClusterConfig(servers=cluster)
            name = check_token("name", name)
            # The incarnation (microseconds since the epoch): fresh per boot and growing, so
            # a peer tells this run of node ``name`` from the last one.
            node_id = f"{name}:{time.time_ns() // 1000:x}"
        else:
            config, node_id = None, name
        self.name = name
        self.node_id = node_id
        """The node part of this node's pids: its name, and on a cluster node the incarnation."""
        self.cluster = config
        """How this node joins a cluster (None: a single node, no NATS)."""
        self._remote: Remote | None = None
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
        self._calls: dict[int, _CallWaiter | _RequestWaiter | RemoteCaller] = {}
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
        if self.cluster is not None:
            from ._remote import Remote  # imports nats-py: only a cluster node pays for it

            remote = Remote(self, self.cluster)
            try:
                await remote.start()
            except BaseException:
                self.closing = True
                self._nursery.cancel_scope.cancel()
                await stack.__aexit__(None, None, None)
                raise
            self._remote = remote
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._stack is not None and self._nursery is not None
        try:
            with trio.CancelScope(shield=True):
                await self._stop_all()
                if self._remote is not None:
                    # After the processes: their exits reach linked and monitoring
                    # processes on other nodes before this node leaves.
                    await self._remote.close()
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

    # -- a process's exit -------------------------------------------------------------

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
        remote = self._remote
        for ref, target in proc.monitors.items():
            other = self._processes.get(target)
            if other is not None:
                other.watchers.pop(ref, None)
            elif remote is not None:
                remote.demonitor(pid, target, ref)
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
            elif remote is not None and other_pid.node != self.node_id:
                remote.link_exit(pid, other_pid, reason)
        if remote is not None:
            remote.names.process_exited(pid)
        self.events.emit("exit", pid=pid, name=proc.name, component=proc.behaviour.component,
                         version=proc.behaviour.version, reason=text,
                         data={"reason_kind": reason.kind})

    # -- running a node ---------------------------------------------------------------

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a helper task in the node's nursery (it is cancelled when the node stops)."""
        self._require_open().start_soon(fn, *args)

    async def start(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Like :meth:`start_soon`, but wait for the task's ``task_status.started(value)``
        and return that value (``trio.Nursery.start``)."""
        return await self._require_open().start(fn, *args)
