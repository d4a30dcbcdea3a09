"""Signals between processes: links, monitors, exit signals, and waiting for an exit."""

from __future__ import annotations

import itertools
import trio

from ._bounded import BoundedMap
from ._codec import encode
from ._delivery import Delivery
from ._errors import ActorError, NoSuchProcess
from ._message import Envelope, Kind
from ._pid import Pid
from ._process import Process, current_process
from ._reasons import KILLED, NOPROC, ExitReason, parse


class Signals(Delivery):
    """Links, monitors and exits (a mixin of :class:`~airssys_actors.Node`)."""

    # Set by Node.__init__.
    _refs: itertools.count[int]
    _exits: BoundedMap[Pid, ExitReason]

    def _elsewhere(self, target: Pid | str) -> Pid | None:
        """The pid on another node ``target`` names (a cluster node only), or None."""
        return None if self._remote is None else self._remote.pid_of(target)

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
        remote = self._elsewhere(target) if other is None else None
        if remote is not None:
            self._remote.link(proc, remote)
            return
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
        remote = self._elsewhere(target) if other is None else None
        if remote is not None:
            self._remote.unlink(proc, remote)
            return
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
        remote = self._elsewhere(target) if other is None else None
        if remote is not None:
            ref = next(self._refs)
            self._remote.monitor(proc, remote, ref)
            return ref
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
        elif target is not None and self._remote is not None and target.node != self.node_id:
            self._remote.demonitor(proc.pid, target, ref)

    def _down(self, watcher: Pid | None, ref: int, pid: Pid | None, reason: ExitReason) -> None:
        if watcher is None:
            return
        env = Envelope(Kind.DOWN, ref, pid, encode(reason.to_wire()))
        proc = self._processes.get(watcher)
        if proc is None:
            if self._remote is not None and watcher.node != self.node_id:
                assert pid is not None
                self._remote.down(watcher, ref, pid, reason)
                return
            self._dead_letter(watcher, env, "noproc")  # a signal to a dead process
            return
        proc.monitors.pop(ref, None)
        self._deliver_system(proc, env)

    async def exit(self, pid: Pid | str, reason: str | ExitReason = "shutdown") -> None:
        """Send an exit signal (Erlang's ``exit/2``): a process trapping exits gets it as a
        message; otherwise it exits with ``reason`` (``normal`` is ignored, ``killed`` acts
        like :meth:`kill`). Raises NoSuchProcess for a dead target."""
        proc = self._resolve(pid)
        why = reason if isinstance(reason, ExitReason) else parse(reason)
        remote = self._elsewhere(pid) if proc is None else None
        if remote is not None:
            self._remote.exit(self._sender(), remote, why)
            await trio.lowlevel.checkpoint()
            return
        if proc is None or not proc.alive:
            raise NoSuchProcess(pid)
        proc.exit_signal(self._sender(), why, untrappable=why == KILLED)
        await trio.lowlevel.checkpoint()

    def kill(self, pid: Pid | str) -> None:
        """End the process at once with reason ``killed``; it cannot trap this."""
        proc = self._resolve(pid)
        remote = self._elsewhere(pid) if proc is None else None
        if remote is not None:
            self._remote.exit(self._sender(), remote, KILLED)
            return
        if proc is None or not proc.alive:
            raise NoSuchProcess(pid)
        proc.exit_signal(self._sender(), KILLED, untrappable=True)

    async def wait(self, pid: Pid | str) -> ExitReason:
        """Wait for the process to exit and return its reason (``noproc`` for an unknown
        pid; the reason of a recently exited one)."""
        proc = self._resolve(pid)
        remote = self._elsewhere(pid) if proc is None else None
        if remote is not None:
            return await self._remote.wait(remote)
        if proc is None:
            key = pid if isinstance(pid, Pid) else Pid.parse(pid)
            return self._exits.get(key, NOPROC) if key is not None else NOPROC
        await proc.wait_done()
        assert proc.exit_reason is not None
        return proc.exit_reason

    def exit_reason(self, pid: Pid) -> ExitReason | None:
        """The reason a recently exited process ended with, or None if alive/unknown."""
        return self._exits.get(pid)
