"""Delivery: where a message goes. An address (a pid, a pid's text or a registered name)
is resolved to a mailbox, the envelope is put in it, and what cannot be delivered is
recorded as a dead letter.

Every message leaving a process goes through :meth:`Delivery._deliver_nowait` (or its
awaiting twin): an address that is not on this node is handed to the remote path
(``_remote``, only on a cluster node), which stands where a mailbox would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import MailboxClosed, NoSuchProcess
from ._message import KIND_NAME, Envelope
from ._pid import Pid
from ._process import current_process
from ._reasons import ExitReason

if TYPE_CHECKING:
    from ._deadletters import DeadLetter, DeadLetters
    from ._events import EventBus
    from ._mailbox import Mailbox
    from ._process import Process
    from ._registry import Registry
    from ._channel import RemoteRoute
    from ._remote import Remote


class Delivery:
    """The node's delivery seam (a mixin of :class:`~airssys_actors.Node`)."""

    # Set by Node.__init__.
    registry: Registry
    events: EventBus
    _processes: dict[Pid, Process]
    _parked: dict[str, Mailbox]
    _dead: DeadLetters
    _remote: Remote | None
    node_id: str

    def _resolve(self, to: Pid | str) -> Process | None:
        if isinstance(to, Pid):
            return self._processes.get(to)
        # Names never start with "<" (see is_valid_name): only pid text needs parsing.
        pid = Pid.parse(to) if to[:1] == "<" else None
        if pid is None:
            pid = self.registry.whereis(to)
            if pid is None:
                # A global name may be held here too (a remote one resolves to no process).
                if self._remote is None:
                    return None
                pid = self._remote.names.whereis(to)
                if pid is None:
                    return None
        return self._processes.get(pid)

    def _mailbox_for(self, to: Pid | str) -> Mailbox | RemoteRoute:
        proc = self._resolve(to)
        if proc is not None and proc.alive:
            return proc.mailbox
        if isinstance(to, str):
            parked = self._parked.get(to)
            if parked is not None:
                return parked
        if self._remote is not None:
            # Not here: a process on another node (its pid, or a global name), if any.
            route = self._remote.route(to)
            if route is not None:
                return route
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
            if mailbox.statistics().system_depth >= mailbox.system_capacity:
                bound = f"{mailbox.system_capacity} messages"
            else:
                bound = f"{mailbox.system_bytes} bytes"
            proc.die(ExitReason("system_limit", f"system lane over {bound}"))
        else:
            self._dead_letter(proc.pid, env, "noproc")

    def _dead_letter(self, to: object, env: Envelope, reason: str, size: int | None = None) -> None:
        address = self._dead.record(to, env, reason, size)
        self.events.emit("dead_letter", pid=env.sender, reason=reason,
                         data={"to": address, "message_kind": KIND_NAME[env.kind],
                               "bytes": len(env.payload) if size is None else size})

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
