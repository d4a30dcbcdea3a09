"""Sending: casts now (``send``, ``send_nowait``) and later (``send_after``, timers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._checks import finite_seconds
from ._codec import encode
from ._delivery import Delivery
from ._errors import ActorError, NodeClosed, NoSuchProcess
from ._message import Envelope, Kind
from ._pid import Pid
from ._process import current_process

if TYPE_CHECKING:
    import trio

    from ._process import Process
    from ._timers import TimerService


NODE_STOPPED = "node_stopped"
"""The dead-letter reason of a message still waiting on a timer (``send_after``, an
injected delay) when its node stopped."""


class Sending(Delivery):
    """Casts and timers (a mixin of :class:`~airssys_actors.Node`)."""

    # Set by Node.__init__.
    name: str
    max_message: int
    timers: TimerService
    _nursery: trio.Nursery | None

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
