"""The remote path: processes on other nodes, over NATS.

Every node has one NATS connection (the transport, on its own thread) and reads its
process signals from one subscription, ``air.<cluster>.p.<me>.>``: one subscription
and one dispatcher keep each sender's signals in the order it sent them. A node
publishes to ``air.<cluster>.p.<peer>.<me>``, so the sender's name is in the subject
(and NATS permissions can stop a node from publishing under another's name).

:class:`Remote` is what the node calls (addressing, sending, links, monitors, calls,
spawn and wait across nodes); the rest is beside it: the channels and their frames
(``_channel``), receiving (``_receiving``), failure detection (``_detector``) and the
global names (``_globalnames``). Flow control is a credit window per direction: a
sender may have ``window`` signals unconsumed at the receiver; past that ``send``
waits (``send_nowait`` says the mailbox is full), as for a full local mailbox.
"""

from __future__ import annotations

from typing import Any

import trio

from ._channel import (CALL, DEMONITOR, DOWN, EXIT, LINK, MONITOR, MSG, NOCONNECTION, SPAWN, UNLINK, Peer, RemoteHost,
                       RemoteRoute, _pid_text)
from ._clusterconfig import ClusterConfig
from ._dataplane import DataPlane
from ._deadletters import PAYLOAD_PREFIX
from ._detector import Detection
from ._errors import CallFailed, NoConnection, NoSuchProcess, SpawnFailed
from ._globalnames import GlobalNames
from ._message import Envelope, Kind
from ._pid import Pid
from ._process import Process
from ._reasons import NOPROC, ExitReason
from ._receiving import Receiving
from ._transport import NatsTransport
from ._wakeup import OneShot
from ._waiters import _CallWaiter


class Remote(Receiving, Detection):
    """A node's remote path: peers, channels, failure detection, the global names."""

    def __init__(self, node: RemoteHost, config: ClusterConfig) -> None:
        self.node = node
        self.config = config
        self.me = node.node_id
        prefix = f"air.{config.cluster}"
        self._prefix = prefix
        self._inbox = f"{prefix}.p.{node.name}."
        self._ctl = f"{prefix}.ctl.{node.name}."
        self._hb_subject = f"{prefix}.hb.{node.name}"
        self.peers: dict[str, Peer] = {}
        self.connected = False
        self.transport = NatsTransport(config, self._on_batch)
        self.plane = DataPlane(config, [f"{prefix}.p.{node.name}.>", f"{prefix}.hb.*"], self._on_data, self._on_state)
        self.names = GlobalNames(self.transport, f"AIR_{config.cluster}_NAMES", self.me,
                                 timeout=config.request_timeout, alive=lambda pid: pid in node._processes,
                                 start_soon=self._start_soon, drop=self._drop)
        self._hb_seq = 0
        self._started_at = 0.0
        self._swept = False
        self._reset_sent: set[tuple[str, int]] = set()
        self._now = 0.0
        self.dropped = 0
        self._tasks = trio.CancelScope()  # the heartbeat: ends when the node leaves
        self._plane_scope = trio.CancelScope()
        self._changed = trio.Event()  # set (and replaced) when a peer comes up
        self._waiter = Pid(self.me, 0)
        self._waits: dict[int, tuple[OneShot, Pid, ExitReason | None]] = {}
        self._spawning: dict[int, tuple[Process | None, bool, int]] = {}

    async def start(self) -> None:
        """Connect both planes (ClusterUnreachable if a server does not answer within
        ``connect_timeout``), then load the global names and start the heartbeat."""
        await self.node.start(self._run_plane)
        self.connected = True
        self._started_at = trio.current_time()
        try:
            await self.transport.start([f"{self._ctl}>"])
            await self.names.start()
        except BaseException:
            self._plane_scope.cancel()
            with trio.CancelScope(shield=True):
                await self.transport.close()
            raise
        self.node.start_soon(self._heartbeats, self._tasks)
        self.node.events.emit("node_up", data={"node": self.me, "cluster": self.config.cluster})

    async def _run_plane(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self._plane_scope:
            await self.plane.run(task_status=task_status)

    async def close(self) -> None:
        """Leave: the last signals (exits of this node's processes, credit owed) are
        written out first, then both connections close."""
        self._tasks.cancel()
        for peer in self.peers.values():
            self._flush_credit(peer, force=True)
        await self.plane.drain(1.0)
        await self.names.release_all(self.config.request_timeout)
        self.connected = False
        self._plane_scope.cancel()
        await self.transport.close()
        for peer in list(self.peers.values()):
            if peer.up:
                self._down(peer, "this node stopped", lost=False)

    def pid_of(self, to: Pid | str) -> Pid | None:
        """The remote pid ``to`` means (a pid, pid text or a global name), or None."""
        if isinstance(to, Pid):
            pid: Pid | None = to
        elif to[:1] == "<":
            pid = Pid.parse(to)
        else:
            pid = self.names.whereis(to)
        if pid is None or pid.node == self.me:
            return None
        return pid

    def route(self, to: Pid | str) -> RemoteRoute | None:
        pid = self.pid_of(to)
        if pid is None:
            return None
        return RemoteRoute(self, self.peer_for(pid), pid)

    def send_envelope(self, peer: Peer, to: Pid, env: Envelope) -> None:
        sender = _pid_text(env.sender)
        if env.kind == Kind.CALL:
            waiter = self.node._calls.get(env.ref)
            deadline = getattr(waiter, "deadline", None)
            timeout = 5.0 if deadline is None else max(0.0, deadline - trio.current_time())
            self._send(peer, CALL, str(to), sender, env.ref, timeout, env.payload)
            calls = peer.calls_out
            calls.add(env.ref)
            if len(calls) > max(256, peer.calls_out_prune_at):
                # Callers that gave up leave their refs here: forget those, O(1) amortised.
                pending = self.node._calls
                peer.calls_out = calls = {r for r in calls if r in pending}
                peer.calls_out_prune_at = 2 * len(calls)
        else:
            to_text = str(to)
            payload = env.payload
            self._send(peer, MSG, to_text, sender, payload)
            if len(payload) > PAYLOAD_PREFIX:
                env = Envelope(env.kind, 0, env.sender, payload[:PAYLOAD_PREFIX])
            peer.unconfirmed.append((peer.tx_seq, to_text, env, len(payload)))

    def link(self, proc: Process, pid: Pid) -> None:
        try:
            peer = self.peer_for(pid)
        except NoSuchProcess:
            proc.exit_signal(pid, NOCONNECTION if self._unreachable(pid) else NOPROC)
            return
        proc.links.add(pid)
        self._tell(peer, LINK, str(proc.pid), str(pid))

    def unlink(self, proc: Process, pid: Pid) -> None:
        proc.links.discard(pid)
        peer = self._sendable(pid)
        if peer is not None:
            self._tell(peer, UNLINK, str(proc.pid), str(pid))

    def link_exit(self, pid: Pid, other: Pid, reason: ExitReason) -> None:
        """A local process linked to ``other`` exited with ``reason``."""
        peer = self._sendable(other)
        if peer is not None:
            self._tell(peer, EXIT, str(pid), str(other), reason.to_wire(), True)

    def exit(self, sender: Pid | None, pid: Pid, reason: ExitReason) -> None:
        """Erlang's ``exit/2`` toward a remote process (``killed`` cannot be trapped)."""
        peer = self.peer_for(pid)
        self._send(peer, EXIT, _pid_text(sender), str(pid), reason.to_wire(), False)

    def monitor(self, proc: Process, pid: Pid, ref: int) -> None:
        try:
            peer = self.peer_for(pid)
        except NoSuchProcess:
            self.node._down(proc.pid, ref, pid, NOCONNECTION if self._unreachable(pid) else NOPROC)
            return
        proc.monitors[ref] = pid
        self._tell(peer, MONITOR, str(proc.pid), str(pid), ref)

    def demonitor(self, watcher: Pid, pid: Pid, ref: int) -> None:
        peer = self._sendable(pid)
        if peer is not None:
            self._tell(peer, DEMONITOR, str(watcher), str(pid), ref)

    def down(self, watcher: Pid, ref: int, pid: Pid, reason: ExitReason) -> None:
        """A local process monitored from another node exited."""
        peer = self._sendable(watcher)
        if peer is None:
            return
        their_ref = peer.monitor_refs.pop(ref, None)
        if their_ref is not None:
            del peer.monitors_in[their_ref]
            self._tell(peer, DOWN, str(watcher), str(pid), their_ref, reason.to_wire())

    async def wait(self, pid: Pid) -> ExitReason:
        """Wait for a process on another node to exit (a monitor held by no process:
        its ``down`` comes to this node's waiter pid, id 0, which no process has)."""
        try:
            peer = self.peer_for(pid)
        except NoSuchProcess:
            return NOCONNECTION if self._unreachable(pid) else NOPROC
        ref = next(self.node._refs)
        done = OneShot()
        self._waits[ref] = (done, pid, None)
        self._tell(peer, MONITOR, str(self._waiter), str(pid), ref)
        try:
            await done.wait()
        finally:
            entry = self._waits.pop(ref, None)
            if entry is not None and entry[2] is None:  # cancelled: no one waits any more
                self.demonitor(self._waiter, pid, ref)
        assert entry is not None and entry[2] is not None
        return entry[2]

    async def spawn(self, node: str, component: str, *, name: str | None, args: bytes, link: bool,
                    monitor: bool, trap_exits: bool, timeout: float) -> Pid:
        """Start ``component`` (a name registered on ``node``) there; with ``link`` /
        ``monitor``, atomically linked to / monitored by the calling process."""
        caller = self.node._caller("spawn") if (link or monitor) else None
        peer = self.peers.get(node)
        if peer is None or not peer.up or not self.connected:
            raise NoConnection(f"{component}@{node}", node)
        ref = next(self.node._refs)
        mref = next(self.node._refs) if monitor else 0
        waiter = _CallWaiter(node)
        options = {"name": name, "link": link, "monitor": mref, "trap_exits": trap_exits}
        self._send(peer, SPAWN, ref, _pid_text(caller.pid if caller else None), component, args, options)
        self.node._calls[ref] = waiter
        # Kept until its answer (or the channel's teardown), even past the timeout: a
        # late answer then ends the child no one waits for any more.
        if len(self._spawning) >= 10_000:
            self._forget_spawns()
        self._spawning[ref] = (caller, link, mref)
        peer.spawns_out.add(ref)
        try:
            with trio.move_on_after(timeout):
                await waiter.wait()
        finally:
            self.node._calls.pop(ref, None)
        if waiter.error is not None:
            error, waiter.error = waiter.error, None
            if isinstance(error, CallFailed):
                raise SpawnFailed(error.reason)
            raise error
        if waiter.payload is None:
            raise SpawnFailed(ExitReason("exit", f"no answer from node {node} within {timeout} s"))
        pid = Pid.parse(waiter.payload.decode())
        assert pid is not None  # linked / monitored already, as the answer was read
        return pid

    def _forget_spawns(self) -> None:
        """Bound the spawns kept for a late answer: forget those no one waits for."""
        for ref in [r for r in self._spawning if r not in self.node._calls]:
            del self._spawning[ref]
            for other in self.peers.values():
                other.spawns_out.discard(ref)

    async def wait_for(self, name: str, timeout: float) -> str:
        with trio.move_on_after(timeout):
            while True:
                peer = self.peers.get(name)
                if peer is not None and peer.up and self.connected and peer.node_id is not None:
                    return peer.node_id
                await self._changed.wait()
        raise NoConnection(f"node {name}", name)

    def nodes(self) -> list[dict[str, Any]]:
        return [{"name": self.node.name, "node": self.me, "up": self.connected, "self": True}] + [
            p.info() for p in self.peers.values()]
