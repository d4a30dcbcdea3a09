"""Introspection: what a node holds right now, and its event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ._checks import InvalidType, finite_seconds, positive_int
from ._delivery import Delivery
from ._errors import ActorError, NoSuchProcess
from ._events import Subscription
from ._pid import Pid

if TYPE_CHECKING:
    from ._waiters import _CallWaiter, _RequestWaiter
    from ._timers import TimerService


@attrs.frozen
class NodeStatistics:
    processes: int
    parked_mailboxes: int
    pending_calls: int
    timers: int
    dead_letters: int


class Introspection(Delivery):
    """Snapshots and subscriptions (a mixin of :class:`~airssys_actors.Node`)."""

    # Set by Node.__init__.
    timers: TimerService
    _calls: dict[int, _CallWaiter | _RequestWaiter]

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

    def cluster_nodes(self) -> list[dict[str, Any]]:
        """This node and every node of its cluster it has heard of: name, incarnation
        (``node``), whether it is up, and its channel's counters. Empty outside a cluster."""
        remote = self._remote
        return [] if remote is None else remote.nodes()

    async def wait_for_node(self, name: str, timeout: float = 5.0) -> str:
        """Wait until node ``name`` of this node's cluster is up (a node learns of its peers
        from their heartbeats, so right after start it may not know one yet); returns its
        id (``name:incarnation``). Raises :class:`NoConnection` after ``timeout`` seconds."""
        timeout = finite_seconds("timeout", timeout)
        if self._remote is None:
            raise ActorError("wait_for_node: this node is not in a cluster (Node(cluster=...))")
        if not isinstance(name, str):
            raise InvalidType("name", name, "a node name (str)")
        return await self._remote.wait_for(name, timeout)

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
