"""Names: the registry seen from the node, and parked mailboxes (a name whose mailbox
outlives its process, for the next process under that name to take over)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._calls import Calls
from ._checks import InvalidType
from ._errors import ActorError, NoSuchProcess
from ._message import Kind
from ._pid import Pid
from ._reasons import NOPROC, ExitReason

if TYPE_CHECKING:
    from ._globalnames import GlobalNames
    from ._mailbox import Mailbox
    from ._wakeup import Wakeup


class Names(Calls):
    """Registered names and parked mailboxes (a mixin of :class:`~airssys_actors.Node`).
    Built on calls: a mailbox given up fails the calls queued in it."""

    # Set by Node.__init__: the tasks waiting on a parked name (see _spawning._Heir).
    _heirs: dict[str, Wakeup]

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

    # -- global names (a cluster node) ---------------------------------------------------

    def _global(self, what: str) -> GlobalNames:
        if self._remote is None:
            raise ActorError(f"{what}: this node is not in a cluster (Node(cluster=...))")
        return self._remote.names

    async def register_global(self, name: str, pid: Pid) -> None:
        """Register ``name`` for ``pid`` (of this node) across the cluster: atomically,
        so a name held by another process raises :class:`NameTaken`. Any node can then
        send to, call, link or monitor ``name``. It goes when the process exits or its
        node is lost."""
        names = self._global("register_global")
        if not isinstance(pid, Pid):
            raise InvalidType("pid", pid, "a Pid")
        if pid not in self._processes:
            raise NoSuchProcess(pid)
        await names.register(name, pid)

    async def unregister_global(self, name: str) -> None:
        """Remove a global name (compare-and-delete: never another holder's)."""
        await self._global("unregister_global").unregister(name)

    def whereis_global(self, name: str) -> Pid | None:
        """The pid holding global ``name`` (from this node's watched copy), or None."""
        return self._global("whereis_global").whereis(name)

    def global_names(self) -> dict[str, Pid]:
        return self._global("global_names").names()

    def is_parked(self, name: str) -> bool:
        return name in self._parked

    def _drop_mailbox(self, where: str, mailbox: Mailbox, reason: ExitReason) -> None:
        for env in mailbox.close():
            if env.kind == Kind.CALL:
                self._fail_call(env.ref, reason, where)
            else:
                self._dead_letter(where, env, str(reason))
