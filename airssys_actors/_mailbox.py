"""A process's mailbox: a bounded FIFO for user messages and a lane for system messages
(replies, DOWN, trapped exits, timers), which are taken first.

System messages bypass the user bound because each answers something the process itself
set up (a request, a monitor, a link, a timer), and dropping one would lose the answer.
Their number is bounded by its own actions, and by :data:`SYSTEM_CAPACITY` as well: a
process that floods its own lane past it, in number or in bytes (:data:`SYSTEM_BYTES`: monitoring or
linking to dead processes in a loop, say, or requesting large answers in a loop) is not
refused one answer, it ends with ``system_limit`` (see
``Node._deliver_system``), as Erlang ends a process that passes a system limit. The
queues are plain deques: nothing ever scans a mailbox (the Erlang lesson about large
mailboxes).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
import trio

from ._errors import MailboxClosed, MailboxFull, MessageTooLarge
from ._message import Envelope, Kind
from ._wakeup import Wakeup


@attrs.frozen
class MailboxStatistics:
    """A snapshot of a mailbox."""

    depth: int
    """User messages waiting."""
    system_depth: int
    """System messages waiting."""
    system_capacity: int
    capacity: int
    senders_waiting: int
    closed: bool


#: The most system messages one mailbox holds; one more ends its process with
#: ``system_limit``. Ten times the default ``Limits.max_pending``: room for every answer
#: to its requests and monitors and for the exit signals of many links at once.
SYSTEM_CAPACITY = 100_000
#: The most payload bytes the system lane holds; one more message ends its process with
#: ``system_limit`` too. A count alone does not bound memory: a request's answer leaves
#: ``Limits.max_pending`` as soon as it is queued, so a threaded guest that requests in a
#: loop from a process answering 1 MiB could queue 100 000 MiB of replies within one
#: call. 256 MiB is what a guest's default ``Limits.memory`` lets it hold itself.
SYSTEM_BYTES = 256 << 20

_DOWN = Kind.DOWN


class Mailbox:
    """Bounded FIFO with backpressure. One receiver; any number of senders.

    ``put_nowait`` raises :class:`MailboxFull` at the bound; ``put`` waits for room and is
    a checkpoint. Order is FIFO per mailbox, so FIFO per sender.
    """

    def __init__(self, capacity: int, max_message: int | None = None,
                 system_capacity: int = SYSTEM_CAPACITY, system_bytes: int = SYSTEM_BYTES) -> None:
        if capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.system_capacity = system_capacity
        self.system_bytes = system_bytes
        #: Payload bytes waiting in the system lane.
        self.system_held = 0
        #: DOWN messages waiting: monitors that fired and are not taken yet still count
        #: against the owner's ``max_pending``.
        self.downs = 0
        #: The largest payload its owner accepts (its ``Limits.max_message``).
        self.max_message = max_message
        self._user: deque[Envelope] = deque()
        self._system: deque[Envelope] = deque()
        self._receiver = Wakeup()
        self._senders = trio.lowlevel.ParkingLot()
        self.closed = False
        #: Fault injection hook: returns True when it took the envelope (see faults.py).
        self.intercept: Callable[[Envelope], bool] | None = None

    def __len__(self) -> int:
        return len(self._user) + len(self._system)

    def put_nowait(self, env: Envelope, bypass: bool = False) -> None:
        if self.closed:
            raise MailboxClosed("mailbox is closed")
        if self.max_message is not None and len(env.payload) > self.max_message:
            raise MessageTooLarge(len(env.payload), self.max_message)
        if self.intercept is not None and not bypass and self.intercept(env):
            return
        if len(self._user) >= self.capacity:
            raise MailboxFull(f"mailbox is full ({self.capacity} messages)")
        self._user.append(env)
        self._receiver.wake()

    async def put(self, env: Envelope) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.closed and len(self._user) >= self.capacity:
            await self._senders.park()
        self.put_nowait(env)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def put_system(self, env: Envelope) -> bool:
        """Queue a system message; False (nothing queued) when the lane is full."""
        if self.closed:
            raise MailboxClosed("mailbox is closed")
        if len(self._system) >= self.system_capacity or self.system_held + len(env.payload) > self.system_bytes:
            return False
        self._system.append(env)
        self.system_held += len(env.payload)
        if env.kind == _DOWN:
            self.downs += 1
        self._receiver.wake()
        return True

    def get_nowait(self) -> Envelope | None:
        """The next message, system lane first, or None when empty."""
        if self._system:
            env = self._system.popleft()
            self.system_held -= len(env.payload)
            if env.kind == _DOWN:
                self.downs -= 1
            return env
        if self._user:
            env = self._user.popleft()
            if self._senders:
                self._senders.unpark()
            return env
        return None

    async def wait(self) -> None:
        """Park until something arrives (returns at once if something is waiting)."""
        if self._user or self._system:
            await trio.lowlevel.checkpoint()
            return
        await self._receiver.wait()

    def wake(self) -> None:
        """Wake a receiver parked in :meth:`wait` even though nothing arrived."""
        self._receiver.wake()

    def close(self) -> list[Envelope]:
        """Refuse further messages, wake blocked senders, and return what was left."""
        self.closed = True
        left = list(self._system) + list(self._user)
        self._system.clear()
        self.system_held = 0
        self.downs = 0
        self._user.clear()
        self._senders.unpark_all()
        self._receiver.wake()
        return left

    def take_system(self) -> list[Envelope]:
        """Remove and return the system lane (answers meant for an exited incarnation)."""
        left = list(self._system)
        self._system.clear()
        self.system_held = 0
        self.downs = 0
        return left

    def reopen(self) -> None:
        """Accept messages again (used when a restarted process adopts this mailbox)."""
        self.closed = False

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            depth=len(self._user),
            system_depth=len(self._system),
            system_capacity=self.system_capacity,
            capacity=self.capacity,
            senders_waiting=len(self._senders),
            closed=self.closed,
        )
