"""The remote path: processes on other nodes, over NATS.

Every node has one NATS connection (the transport, on its own thread) and reads its
process signals from one subscription, ``air.<cluster>.p.<me>.>``: one subscription
and one dispatcher keep each sender's signals in the order it sent them. A node
publishes to ``air.<cluster>.p.<peer>.<me>``, so the sender's name is in the subject
(and NATS permissions can stop a node from publishing under another's name).

Between two nodes, each direction is a **channel**: an epoch and a sequence number on
every signal. Within an epoch signals arrive in order, without gaps or duplicates;
anything else (a gap, a signal of a dead epoch, the peer declared down, this node's own
connection dropping) **tears the channel down**: every link toward that node gets an
exit signal ``noconnection``, every monitor a ``down`` with ``noconnection``, every
call waiting on it fails with ``noconnection``, each exactly once, and both sides start a
new epoch. A node that was declared down and comes back (a zombie) sees its old epoch
refused with a ``reset`` and never silently resumes.

Flow control is a credit window per direction: a sender may have ``window`` signals
unconsumed at the receiver; past that ``send`` waits (``send_nowait`` says the mailbox
is full), as for a full local mailbox. A receiver whose target mailbox is full holds
that target's signals, in order, until there is room.

Failure detection: a heartbeat every ``heartbeat`` seconds; a peer silent for
``suspect_after`` is probed on ``air.<cluster>.ctl.<peer>.ping`` (no responders: it is
gone at once); silent for ``down_after``: down.

A frame is a msgpack array ``[node_id, epoch, seq, kind, *fields]``; every field is
checked where it is read, and a frame that does not check out is dropped with a
``cluster_drop`` event.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any

import msgpack
import trio

from ._waiters import RemoteCaller, _CallWaiter, _RequestWaiter
from ._clusterconfig import ClusterConfig
from ._deadletters import PAYLOAD_PREFIX
from ._errors import ActorError, CallFailed, MailboxFull, MessageTooLarge, NoConnection, NoSuchProcess, SpawnFailed
from ._globalnames import GlobalNames
from ._message import Envelope, Kind
from ._pid import Pid, incarnation, node_name
from ._process import Process
from ._reasons import KILLED, NOPROC, ExitReason
from ._wakeup import OneShot
from ._transport import (Inbound, KvChange, NatsTransport, NoResponders, NotConnected, PublishFailed, StateChange,
                         TransportError)

if TYPE_CHECKING:
    from ._node import Node

log = logging.getLogger("airssys_actors.cluster")

NOCONNECTION = ExitReason("noconnection")
#: Nodes this node keeps track of at once; past it, a node never heard of is ignored
#: (after forgetting one that is down), so made-up names cannot grow the table.
MAX_PEERS = 1024

# Sequenced frames (they take a sequence number and a unit of credit).
MSG, CALL, REPLY, FAILED, LINK, UNLINK, EXIT, MONITOR, DEMONITOR, DOWN, SPAWN, SPAWNED = range(1, 13)
# Channel control (no sequence number, no credit).
CREDIT, RESET = 20, 21

#: How many fields each kind carries after the header.
_FIELDS = {MSG: 3, CALL: 5, REPLY: 3, FAILED: 4, LINK: 2, UNLINK: 2, EXIT: 4, MONITOR: 3, DEMONITOR: 3,
           DOWN: 4, SPAWN: 5, SPAWNED: 3, CREDIT: 1, RESET: 0}


class Peer:
    """What this node knows of one other node, and the channel to it."""

    def __init__(self, name: str, subject: str) -> None:
        self.name = name
        self.subject = subject
        self.node_id: str | None = None
        self.up = False
        self.heard = 0.0
        self.probing = False
        # Outbound: our epoch toward it, the last sequence number sent, how many it consumed.
        self.tx_epoch = 1
        self.tx_seq = 0
        self.acked = 0
        self.room = trio.Event()
        # Casts sent and not yet credited: (seq, to, envelope with the payload's first
        # bytes, size). If the channel goes before they are, each becomes a dead letter
        # ``unconfirmed``: it may or may not have arrived, but it is not silently lost.
        self.unconfirmed: collections.deque[tuple[int, str, Envelope, int]] = collections.deque()
        # Inbound: its epoch toward us, the last sequence number accepted, how many consumed.
        self.rx_epoch = 0
        self.rx_alive = False
        self.rx_seq = 0
        self.consumed = 0
        self.credited = 0
        # Signals for local processes whose mailbox was full, in order, per target.
        self.held: dict[Pid, collections.deque[list[Any]]] = {}
        self.held_count = 0
        # Monitors it holds on our processes: its ref -> (our ref, our target).
        self.monitors_in: dict[int, tuple[int, Pid]] = {}
        # Our refs waiting on it (calls, requests, spawns), and its calls we are handling.
        self.calls_out: set[int] = set()
        self.calls_in: set[int] = set()
        self.spawns_out: set[int] = set()
        self.downs = 0

    def tx_window_broken(self, window: int) -> bool:
        """True when it has more signals waiting here than its credit allows (each
        direction may exceed its window by the signals it sends besides messages, which
        are never refused for credit: allow a second window of those)."""
        return self.held_count >= 2 * window

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node_id, "up": self.up, "epoch": self.tx_epoch,
                "sent": self.tx_seq, "unacked": self.tx_seq - self.acked, "downs": self.downs,
                "held": sum(len(q) for q in self.held.values())}


class RemoteRoute:
    """Where ``_deliver`` puts an envelope addressed to a process on another node (it
    stands where a local mailbox would)."""

    __slots__ = ("peer", "pid", "remote")

    def __init__(self, remote: Remote, peer: Peer, pid: Pid) -> None:
        self.remote = remote
        self.peer = peer
        self.pid = pid

    def put_nowait(self, env: Envelope) -> None:
        remote, peer = self.remote, self.peer
        if not peer.up:
            raise NoConnection(self.pid, peer.name)
        if peer.tx_seq - peer.acked >= remote.config.window:
            raise MailboxFull(f"no credit toward node {peer.name} ({remote.config.window} signals in flight)")
        remote.send_envelope(peer, self.pid, env)

    async def put(self, env: Envelope) -> None:
        remote, peer = self.remote, self.peer
        await trio.lowlevel.checkpoint_if_cancelled()
        while peer.up and peer.tx_seq - peer.acked >= remote.config.window:
            await peer.room.wait()
        self.put_nowait(env)


def _pid_text(pid: Pid | None) -> str | None:
    return None if pid is None else str(pid)


def _pid(value: object) -> Pid | None:
    return Pid.parse(value) if isinstance(value, str) else None


class Remote:
    """A node's remote path: peers, channels, failure detection, the global names."""

    def __init__(self, node: Node, config: ClusterConfig) -> None:
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
        self.names = GlobalNames(self.transport, f"AIR_{config.cluster}_NAMES", self.me,
                                 timeout=config.request_timeout, alive=lambda pid: pid in node._processes,
                                 start_soon=self._start_soon, drop=self._drop)
        self._hb_seq = 0
        self._started_at = 0.0
        self._swept = False
        self._reset_sent: set[tuple[str, int]] = set()
        self.dropped = 0
        self._tasks = trio.CancelScope()  # the heartbeat: ends when the node leaves
        self._changed = trio.Event()  # set (and replaced) when a peer comes up
        self._waiter = Pid(self.me, 0)
        self._waits: dict[int, tuple[OneShot, Pid, ExitReason | None]] = {}

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        p = self._prefix
        await self.transport.start([f"{p}.p.{self.node.name}.>", f"{p}.hb.*", f"{p}.ctl.{self.node.name}.>"])
        self.connected = True
        self._started_at = trio.current_time()
        try:
            await self.names.start()
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.transport.close()
            raise
        self.node.start_soon(self._heartbeats, self._tasks)
        self.node.events.emit("node_up", data={"node": self.me, "cluster": self.config.cluster})

    async def close(self) -> None:
        self._tasks.cancel()
        for peer in self.peers.values():
            self._flush_credit(peer, force=True)
        self.connected = False
        await self.transport.close()
        for peer in list(self.peers.values()):
            if peer.up:
                self._down(peer, "this node stopped", lost=False)

    # -- addressing -------------------------------------------------------------------

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

    def peer_for(self, pid: Pid) -> Peer:
        """The peer ``pid`` lives on, up and of ``pid``'s incarnation; else NoConnection
        (node unknown or down) or NoSuchProcess (an older incarnation: that process is gone)."""
        peer = self.peers.get(node_name(pid.node))
        if peer is None or not peer.up or not self.connected:
            raise NoConnection(pid, node_name(pid.node))
        if peer.node_id != pid.node:
            if incarnation(pid.node) < incarnation(peer.node_id or ""):
                raise NoSuchProcess(pid)
            raise NoConnection(pid, pid.node)
        return peer

    def route(self, to: Pid | str) -> RemoteRoute | None:
        pid = self.pid_of(to)
        if pid is None:
            return None
        return RemoteRoute(self, self.peer_for(pid), pid)

    # -- sending frames ---------------------------------------------------------------

    def _send(self, peer: Peer, kind: int, *fields: Any) -> None:
        data = msgpack.packb([self.me, peer.tx_epoch, peer.tx_seq + 1, kind, *fields])
        if len(data) > self.transport.max_payload:
            # Refused here, before it takes a sequence number: the sender is told at once.
            raise MessageTooLarge(len(data), self.transport.max_payload)
        peer.tx_seq += 1
        try:
            self.transport.publish(peer.subject, data)
        except NotConnected:  # this node is leaving
            raise NoConnection(peer.name, peer.name) from None

    def _control(self, peer: Peer, kind: int, epoch: int, *fields: Any) -> None:
        self._publish(peer.subject, msgpack.packb([self.me, epoch, 0, kind, *fields]))

    def _publish(self, subject: str, data: bytes) -> None:
        """Publish what no sender waits on (channel control, heartbeats, answers to
        probes): once this node is leaving there is no one to tell."""
        try:
            self.transport.publish(subject, data)
        except NotConnected:
            pass

    def send_envelope(self, peer: Peer, to: Pid, env: Envelope) -> None:
        sender = _pid_text(env.sender)
        if env.kind == Kind.CALL:
            waiter = self.node._calls.get(env.ref)
            deadline = getattr(waiter, "deadline", None)
            timeout = 5.0 if deadline is None else max(0.0, deadline - trio.current_time())
            peer.calls_out.add(env.ref)
            self._send(peer, CALL, str(to), sender, env.ref, timeout, env.payload)
        else:
            to_text = str(to)
            payload = env.payload
            self._send(peer, MSG, to_text, sender, payload)
            if len(payload) > PAYLOAD_PREFIX:
                env = Envelope(env.kind, 0, env.sender, payload[:PAYLOAD_PREFIX])
            peer.unconfirmed.append((peer.tx_seq, to_text, env, len(payload)))

    def _sendable(self, pid: Pid) -> Peer | None:
        """The peer to tell about ``pid``, or None when the channel is gone (its
        teardown has told, or will tell, everyone concerned)."""
        peer = self.peers.get(node_name(pid.node))
        if peer is None or not peer.up or peer.node_id != pid.node or not self.connected:
            return None
        return peer

    # Signals (each may exceed the credit window by one: signals are never refused
    # for want of credit; only messages wait).

    def link(self, proc: Process, pid: Pid) -> None:
        try:
            peer = self.peer_for(pid)
        except NoSuchProcess:
            proc.exit_signal(pid, NOCONNECTION if self._unreachable(pid) else NOPROC)
            return
        proc.links.add(pid)
        self._send(peer, LINK, str(proc.pid), str(pid))

    def _unreachable(self, pid: Pid) -> bool:
        peer = self.peers.get(node_name(pid.node))
        return peer is None or not peer.up or not self.connected or incarnation(pid.node) > incarnation(peer.node_id or "")

    def unlink(self, proc: Process, pid: Pid) -> None:
        proc.links.discard(pid)
        peer = self._sendable(pid)
        if peer is not None:
            self._send(peer, UNLINK, str(proc.pid), str(pid))

    def link_exit(self, pid: Pid, other: Pid, reason: ExitReason) -> None:
        """A local process linked to ``other`` exited with ``reason``."""
        peer = self._sendable(other)
        if peer is not None:
            self._send(peer, EXIT, str(pid), str(other), reason.to_wire(), True)

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
        self._send(peer, MONITOR, str(proc.pid), str(pid), ref)

    def demonitor(self, watcher: Pid, pid: Pid, ref: int) -> None:
        peer = self._sendable(pid)
        if peer is not None:
            self._send(peer, DEMONITOR, str(watcher), str(pid), ref)

    def down(self, watcher: Pid, ref: int, pid: Pid, reason: ExitReason) -> None:
        """A local process monitored from another node exited."""
        peer = self._sendable(watcher)
        if peer is None:
            return
        for their_ref, (ours, _target) in list(peer.monitors_in.items()):
            if ours == ref:
                del peer.monitors_in[their_ref]
                self._send(peer, DOWN, str(watcher), str(pid), their_ref, reason.to_wire())
                return

    def answer(self, waiter: RemoteCaller, ref: int, replier: Pid | str | None, payload: bytes | None,
               failure: Any = None) -> None:
        """Answer a call from another node: its reply, or ``failure`` (``["exit", reason]``
        or ``["error", text]``)."""
        peer = waiter.peer
        peer.calls_in.discard(ref)
        if not peer.up or not self.connected:
            return
        if payload is not None:
            self._send(peer, REPLY, waiter.ref, None if replier is None else str(replier), payload)
        else:
            self._send(peer, FAILED, waiter.ref, None if replier is None else str(replier), failure[0], failure[1])

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
        self._send(peer, MONITOR, str(self._waiter), str(pid), ref)
        try:
            await done.wait()
        finally:
            entry = self._waits.pop(ref, None)
            if entry is not None and entry[2] is None:  # cancelled: no one waits any more
                self.demonitor(self._waiter, pid, ref)
        assert entry is not None and entry[2] is not None
        return entry[2]

    def _waited(self, ref: int, reason: ExitReason) -> None:
        entry = self._waits.get(ref)
        if entry is not None and entry[2] is None:
            self._waits[ref] = (entry[0], entry[1], reason)
            entry[0].fire()

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
        self.node._calls[ref] = waiter
        peer.spawns_out.add(ref)
        options = {"name": name, "link": link, "monitor": mref, "trap_exits": trap_exits}
        self._send(peer, SPAWN, ref, _pid_text(caller.pid if caller else None), component, args, options)
        try:
            with trio.move_on_after(timeout):
                await waiter.wait()
        finally:
            self.node._calls.pop(ref, None)
            peer.spawns_out.discard(ref)
        if waiter.error is not None:
            error, waiter.error = waiter.error, None
            if isinstance(error, CallFailed):
                raise SpawnFailed(error.reason)
            raise error
        if waiter.payload is None:
            raise SpawnFailed(ExitReason("exit", f"no answer from node {node} within {timeout} s"))
        pid = Pid.parse(waiter.payload.decode())
        assert pid is not None
        if caller is not None and caller.alive:
            if link:
                caller.links.add(pid)
            if monitor:
                caller.monitors[mref] = pid
        return pid

    # -- receiving ----------------------------------------------------------------------

    def _on_batch(self, items: list[Any]) -> None:
        for item in items:
            try:
                if type(item) is Inbound:
                    self._on_inbound(item)
                elif type(item) is KvChange:
                    self.names.on_change(item)
                elif type(item) is StateChange:
                    self._on_state(item.state)
                elif type(item) is PublishFailed:
                    self._on_publish_failed(item)
            except Exception as exc:  # a bug or a hostile frame: never the node's end
                self._drop(getattr(item, "subject", "?"), f"{type(exc).__name__}: {exc}")

    def _start_soon(self, fn: Any, *args: Any) -> None:
        """A task in the node's nursery, unless the node is past running it."""
        nursery = self.node._nursery
        if nursery is not None and not nursery.cancel_scope.cancel_called:
            nursery.start_soon(self._guarded, fn, *args)

    async def _guarded(self, fn: Any, *args: Any) -> None:
        """Run a task of the remote path in the node's nursery: whatever a peer sent,
        its failure is a dropped frame, never the node's end."""
        try:
            await fn(*args)
        except Exception as exc:
            log.exception("cluster task %s failed", getattr(fn, "__name__", fn))
            self._drop(getattr(args[0], "subject", "?"), f"{type(exc).__name__}: {exc}")

    def _drop(self, subject: str, why: str) -> None:
        self.dropped += 1
        self.node.events.emit("cluster_drop", data={"subject": subject[:200], "why": why[:500]})

    def _on_inbound(self, item: Inbound) -> None:
        subject = item.subject
        if subject.startswith(self._inbox):
            self._on_frame(subject[len(self._inbox):], item.data, subject)
        elif subject.startswith(self._ctl):
            self._on_ctl(subject[len(self._ctl):], item)
        elif subject.startswith(self._prefix + ".hb."):
            self._on_heartbeat(subject[len(self._prefix) + 4:], item.data)
        else:
            self._drop(subject, "unexpected subject")

    def _peer(self, name: str) -> Peer | None:
        peer = self.peers.get(name)
        if peer is None:
            if len(self.peers) >= MAX_PEERS:
                self._forget_down_peer()
                if len(self.peers) >= MAX_PEERS:
                    return None
            peer = self.peers[name] = Peer(name, f"{self._prefix}.p.{name}.{self.node.name}")
        return peer

    def _forget_down_peer(self) -> None:
        for name, peer in self.peers.items():
            if not peer.up and not peer.held:
                del self.peers[name]
                return

    def _on_heartbeat(self, name: str, data: bytes) -> None:
        if name == self.node.name:
            return
        body = msgpack.unpackb(data)
        if not (isinstance(body, list) and len(body) >= 1 and isinstance(body[0], str)) or node_name(body[0]) != name:
            self._drop(f"hb.{name}", "malformed heartbeat")
            return
        peer = self._adopt(name, body[0])
        if peer is None:
            return
        peer.heard = trio.current_time()
        if not peer.up:
            # Back (a zombie that was declared down, or our own reconnect): its old epoch
            # is dead; say so, so it tears down what it still holds toward us.
            peer.up = True
            self._control(peer, RESET, peer.tx_epoch)
            self._peer_up(peer)

    def _peer_up(self, peer: Peer) -> None:
        self.node.events.emit("node_up", data={"node": peer.node_id})
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, name: str, timeout: float) -> str:
        with trio.move_on_after(timeout):
            while True:
                peer = self.peers.get(name)
                if peer is not None and peer.up and self.connected and peer.node_id is not None:
                    return peer.node_id
                await self._changed.wait()
        raise NoConnection(f"node {name}", name)

    def _adopt(self, name: str, node_id: str) -> Peer | None:
        """The peer ``name`` at incarnation ``node_id``, or None for an older incarnation
        (or a new node past :data:`MAX_PEERS`)."""
        peer = self._peer(name)
        if peer is None:
            return None
        if peer.node_id == node_id:
            return peer
        if peer.node_id is not None:
            if incarnation(node_id) < incarnation(peer.node_id):
                return None
            # A new incarnation: the old one is gone with all its processes.
            if peer.up:
                self._down(peer, f"restarted as {node_id}")
            self._teardown(peer, "new incarnation")
            peer.rx_epoch = 0
        peer.node_id = node_id
        peer.up = True
        peer.heard = trio.current_time()
        self._peer_up(peer)
        return peer

    def _on_frame(self, name: str, data: bytes, subject: str) -> None:
        frame = msgpack.unpackb(data)
        if not (isinstance(frame, list) and len(frame) >= 4):
            self._drop(subject, "not a frame")
            return
        node_id, epoch, seq, kind = frame[0], frame[1], frame[2], frame[3]
        if not (isinstance(node_id, str) and node_name(node_id) == name and type(epoch) is int
                and type(seq) is int and type(kind) is int and len(frame) == 4 + _FIELDS.get(kind, -99)):
            self._drop(subject, "malformed frame header")
            return
        peer = self._adopt(name, node_id)
        if peer is None:
            self._drop(subject, "frame of an older incarnation")
            return
        peer.heard = trio.current_time()
        if kind == CREDIT:
            if epoch == peer.tx_epoch and type(frame[4]) is int and peer.acked < frame[4] <= peer.tx_seq:
                peer.acked = acked = frame[4]
                unconfirmed = peer.unconfirmed
                # A count of consumed signals: the receiver has every signal up to that
                # sequence number (consumed, or held there, where a teardown accounts
                # for it), so only later casts are still unconfirmed.
                while unconfirmed and unconfirmed[0][0] <= acked:
                    unconfirmed.popleft()
                peer.room.set()
                peer.room = trio.Event()
            return
        if epoch > peer.rx_epoch:
            if peer.rx_alive:
                # It started a new epoch: it tore the channel down; so do we.
                self._teardown(peer, "reset by peer")
            peer.rx_epoch, peer.rx_alive, peer.rx_seq, peer.consumed, peer.credited = epoch, True, 0, 0, 0
            if not peer.up:
                peer.up = True
        if epoch < peer.rx_epoch or not peer.rx_alive:
            self._stale(peer, frame)
            return
        if kind == RESET:
            return
        if seq != peer.rx_seq + 1:
            self._teardown(peer, f"sequence gap: expected {peer.rx_seq + 1}, got {seq}")
            self._stale(peer, frame)
            return
        peer.rx_seq = seq
        self._dispatch(peer, frame)

    def _stale(self, peer: Peer, frame: list[Any]) -> None:
        """A frame of a dead epoch: its message is a dead letter, and the sender is told
        (once per epoch) that its channel is gone."""
        kind = frame[3]
        if kind in (MSG, CALL):
            to = frame[4]
            payload = frame[-1] if isinstance(frame[-1], bytes) else b""
            self.node._dead_letter(to if isinstance(to, str) else "?",
                                   Envelope(Kind.CAST if kind == MSG else Kind.CALL, 0, _pid(frame[5]), payload),
                                   "noconnection")
        key = (frame[0], frame[1])
        if key not in self._reset_sent and kind != RESET:
            if len(self._reset_sent) > 10_000:
                self._reset_sent.clear()
            self._reset_sent.add(key)
            self._control(peer, RESET, peer.tx_epoch)

    # Signals for a local process wait behind that process's held messages (order per
    # pair), except answers to calls, which never wait for a mailbox.

    def _dispatch(self, peer: Peer, frame: list[Any]) -> None:
        kind = frame[3]
        if kind == REPLY or kind == FAILED:
            self._consumed(peer)
            self._on_answer(peer, frame)
            return
        if kind == SPAWN:
            self._consumed(peer)
            self.node.start_soon(self._guarded, self._on_spawn, peer, frame)
            return
        if kind == SPAWNED:
            self._consumed(peer)
            self._on_spawned(peer, frame)
            return
        node = self.node
        if kind == MSG or kind == CALL:
            to = frame[4]
            proc = node._resolve(to) if isinstance(to, str) else None
            if proc is None:
                self._consumed(peer)
                self._no_target(peer, frame)
                return
        else:
            # The local end of a signal: the watcher of a DOWN, the target of the others.
            local = _pid(frame[4] if kind == DOWN else frame[5])
            proc = node._processes.get(local) if local is not None else None
        if proc is not None:
            held = peer.held.get(proc.pid)
            if held is not None:
                if peer.tx_window_broken(self.config.window):
                    # More held than its credit allows: it ignores flow control. Its
                    # channel is torn down rather than this node's memory given to it.
                    self._teardown(peer, "sent past its credit window")
                    self._no_target(peer, frame, "noconnection")
                    return
                held.append(frame)
                peer.held_count += 1
                return
            if kind == MSG or kind == CALL:
                if not self._deliver_frame(peer, proc, frame):
                    held = peer.held[proc.pid] = collections.deque([frame])
                    peer.held_count += 1
                    node.start_soon(self._guarded, self._drain_held, peer, proc, held)
                return
        self._consumed(peer)
        self._signal(peer, frame)

    def _consumed(self, peer: Peer) -> None:
        peer.consumed += 1
        if peer.consumed - peer.credited >= max(1, self.config.window // 4):
            self._flush_credit(peer)

    def _flush_credit(self, peer: Peer, force: bool = False) -> None:
        if peer.consumed > peer.credited and (force or (peer.up and self.connected)):
            peer.credited = peer.consumed
            self._control(peer, CREDIT, peer.rx_epoch, peer.consumed)

    def _envelope(self, frame: list[Any]) -> Envelope | None:
        kind, sender, payload = frame[3], _pid(frame[5]), frame[-1]
        if not isinstance(payload, bytes) or (frame[5] is not None and sender is None):
            return None
        if kind == MSG:
            return Envelope(Kind.CAST, 0, sender, payload)
        ref, timeout = frame[6], frame[7]
        if type(ref) is not int or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 86_400:
            return None
        return Envelope(Kind.CALL, ref, sender, payload)

    def _deliver_frame(self, peer: Peer, proc: Process, frame: list[Any]) -> bool:
        """Put a MSG or CALL frame in ``proc``'s mailbox; False if it is full."""
        env = self._envelope(frame)
        if env is None:
            self._consumed(peer)
            self._drop(peer.subject, "malformed message frame")
            return True
        if not proc.alive:
            self._consumed(peer)
            self._no_target(peer, frame)
            return True
        if env.kind == Kind.CALL:
            their_ref = env.ref
            env.ref = ref = next(self.node._refs)
            self.node._calls[ref] = RemoteCaller(self, peer, their_ref, env.sender, trio.current_time() + frame[7])
            peer.calls_in.add(ref)
        try:
            proc.mailbox.put_nowait(env)
        except MailboxFull:
            if env.kind == Kind.CALL:
                self.node._calls.pop(env.ref, None)
                peer.calls_in.discard(env.ref)
            return False
        except ActorError as exc:  # closed, or too large for this mailbox
            self._consumed(peer)
            if env.kind == Kind.CALL:
                waiter = self.node._calls.pop(env.ref)
                self.answer(waiter, env.ref, proc.pid, None, ["error", str(exc)])
            else:
                self.node._dead_letter(proc.pid, env, "noproc" if "closed" in str(exc) else "message_too_large")
            return True
        self._consumed(peer)
        return True

    async def _drain_held(self, peer: Peer, proc: Process, held: collections.deque[list[Any]]) -> None:
        """Deliver ``proc``'s held signals in order as its mailbox makes room (the deque
        is emptied by a teardown meanwhile: then there is nothing left to do)."""
        try:
            while held:
                frame = held[0]
                if frame[3] in (MSG, CALL) and proc.alive:
                    if not self._deliver_frame(peer, proc, frame):
                        await proc.mailbox._senders.park()
                        continue
                else:
                    self._consumed(peer)
                    self._signal(peer, frame)
                held.popleft()
                peer.held_count -= 1
        finally:
            if peer.held.get(proc.pid) is held:
                del peer.held[proc.pid]
            if held:  # the node is stopping
                peer.held_count -= len(held)
            for frame in held:
                self._consumed(peer)
                if frame[3] in (MSG, CALL):
                    self._no_target(peer, frame, "noconnection")

    def _no_target(self, peer: Peer, frame: list[Any], reason: str = "noproc") -> None:
        kind, to = frame[3], frame[4]
        env = self._envelope(frame)
        if env is None:
            return
        if kind == CALL:
            caller = RemoteCaller(self, peer, env.ref, env.sender, 0.0)
            self.answer(caller, -1, to if isinstance(to, str) else None, None, ["exit", ExitReason(reason).to_wire()])
        self.node._dead_letter(to, env, reason)

    def _signal(self, peer: Peer, frame: list[Any]) -> None:
        node = self.node
        kind = frame[3]
        a, b = _pid(frame[4]), _pid(frame[5])
        if kind == LINK:
            # frame: remote linker a, local target b
            if a is None or b is None or a.node != peer.node_id:
                return self._drop(peer.subject, "malformed link")
            proc = node._processes.get(b)
            if proc is None or not proc.alive:
                self._send(peer, EXIT, str(b), str(a), NOPROC.to_wire(), True)
            else:
                proc.links.add(a)
        elif kind == UNLINK:
            proc = node._processes.get(b) if b is not None else None
            if proc is not None and a is not None:
                proc.links.discard(a)
        elif kind == EXIT:
            sender, reason, from_link = a, ExitReason.from_wire(frame[6]), frame[7] is True
            if frame[4] is not None and (sender is None or sender.node != peer.node_id):
                return self._drop(peer.subject, "malformed exit")
            proc = node._processes.get(b) if b is not None else None
            if proc is None:
                return
            if from_link:
                if sender not in proc.links:
                    return  # unlinked meanwhile: a link exit for no link is ignored, as in Erlang
                proc.links.discard(sender)
            proc.exit_signal(sender, reason, untrappable=not from_link and reason == KILLED)
        elif kind == MONITOR:
            watcher, their_ref = a, frame[6]
            if watcher is None or b is None or watcher.node != peer.node_id or type(their_ref) is not int:
                return self._drop(peer.subject, "malformed monitor")
            proc = node._processes.get(b)
            if proc is None or not proc.alive:
                reason = node._exits.get(b, NOPROC)
                self._send(peer, DOWN, str(watcher), str(b), their_ref, reason.to_wire())
                return
            if len(peer.monitors_in) >= 1_000_000:
                self._send(peer, DOWN, str(watcher), str(b), their_ref, ExitReason("system_limit").to_wire())
                return
            ours = node._add_monitor(watcher, proc)
            peer.monitors_in[their_ref] = (ours, b)
        elif kind == DEMONITOR:
            entry = peer.monitors_in.pop(frame[6], None) if type(frame[6]) is int else None
            if entry is not None:
                proc = node._processes.get(entry[1])
                if proc is not None:
                    proc.watchers.pop(entry[0], None)
        elif kind == DOWN:
            watcher, ref = a, frame[6]
            if watcher == self._waiter and type(ref) is int:
                self._waited(ref, ExitReason.from_wire(frame[7]))
                return
            proc = node._processes.get(watcher) if watcher is not None else None
            if proc is None or type(ref) is not int or proc.monitors.get(ref) != b:
                return
            node._down(watcher, ref, b, ExitReason.from_wire(frame[7]))

    def _on_answer(self, peer: Peer, frame: list[Any]) -> None:
        ref, replier = frame[4], _pid(frame[5])
        where = frame[5][:300] if isinstance(frame[5], str) else f"a process on node {peer.name}"
        if type(ref) is not int:
            return self._drop(peer.subject, "malformed reply")
        peer.calls_out.discard(ref)
        node = self.node
        waiter = node._calls.get(ref)
        if frame[3] == REPLY:
            payload = frame[6]
            if not isinstance(payload, bytes):
                return self._drop(peer.subject, "malformed reply")
            if waiter is None or type(waiter) not in (_CallWaiter, _RequestWaiter):
                node._dead_letter("(caller gone)", Envelope(Kind.REPLY, ref, replier, payload), "late_reply")
                return
            node._answer_call(ref, replier, payload)
            return
        tag, value = frame[6], frame[7]
        if waiter is None:
            return
        if tag == "exit":
            node._fail_call(ref, ExitReason.from_wire(value), where)
        else:
            node._fail_call_error(ref, ActorError(str(value)[:4096]), replier)

    # -- remote spawn ---------------------------------------------------------------------

    async def _on_spawn(self, peer: Peer, frame: list[Any]) -> None:
        ref, requester, component, args, options = frame[4], _pid(frame[5]), frame[6], frame[7], frame[8]
        node = self.node
        if not (type(ref) is int and isinstance(component, str) and isinstance(args, bytes) and isinstance(options, dict)):
            return self._drop(peer.subject, "malformed spawn")
        name = options.get("name")
        link, mref, trap = options.get("link") is True, options.get("monitor", 0), options.get("trap_exits") is True
        if (link or mref) and (requester is None or requester.node != peer.node_id):
            return self._drop(peer.subject, "malformed spawn")
        try:
            # Only a component registered on this node by name: a peer cannot make this
            # node load a file or bytes of its choosing.
            if component not in node._components:
                raise ActorError(f"unknown component {component!r} on node {node.name}")
            if name is not None and not isinstance(name, str):
                raise ActorError("name must be a str")
            pid = await node._spawn_bytes(component, name=name, args=args, trap_exits=trap)
        except Exception as exc:
            if self._sendable_peer(peer):
                reason = exc.reason if isinstance(exc, SpawnFailed) else ExitReason("exit", str(exc))
                self._send(peer, SPAWNED, ref, None, reason.to_wire())
            return
        if not self._sendable_peer(peer):
            return
        self._send(peer, SPAWNED, ref, str(pid), None)
        proc = node._processes.get(pid)
        if link and requester is not None:
            if proc is not None and proc.alive:
                proc.links.add(requester)
            else:
                self._send(peer, EXIT, str(pid), str(requester), node._exits.get(pid, NOPROC).to_wire(), True)
        if mref and requester is not None and type(mref) is int:
            if proc is not None and proc.alive:
                peer.monitors_in[mref] = (node._add_monitor(requester, proc), pid)
            else:
                self._send(peer, DOWN, str(requester), str(pid), mref, node._exits.get(pid, NOPROC).to_wire())

    def _sendable_peer(self, peer: Peer) -> bool:
        return peer.up and self.connected

    def _on_spawned(self, peer: Peer, frame: list[Any]) -> None:
        ref, pid_text, failure = frame[4], frame[5], frame[6]
        waiter = self.node._calls.get(ref) if type(ref) is int and ref in peer.spawns_out else None
        if not isinstance(waiter, _CallWaiter):
            return
        if isinstance(pid_text, str) and _pid(pid_text) is not None:
            waiter.payload = pid_text.encode()
        else:
            waiter.error = SpawnFailed(ExitReason.from_wire(failure))
        waiter.fire()

    # -- control requests ---------------------------------------------------------------

    def _on_ctl(self, op: str, item: Inbound) -> None:
        if item.reply is None:
            return self._drop(item.subject, "control request without a reply subject")
        if op == "ping":
            self._publish(item.reply, self.me.encode())
        elif op == "nodes":
            self._publish(item.reply, msgpack.packb([p.info() for p in self.peers.values()]))
        else:
            self._drop(item.subject, f"unknown control operation {op[:50]!r}")

    # -- failure detection ----------------------------------------------------------------

    async def _heartbeats(self, scope: trio.CancelScope) -> None:
        with scope:
            await self._beat()

    async def _beat(self) -> None:
        config = self.config
        while True:
            if self.connected:
                self._hb_seq += 1
                self._publish(self._hb_subject, msgpack.packb([self.me, self._hb_seq]))
            now = trio.current_time()
            for peer in list(self.peers.values()):
                self._flush_credit(peer)
                if not peer.up:
                    continue
                silent = now - peer.heard
                if silent >= config.down_after:
                    self._down(peer, f"silent for {silent:.2f} s")
                elif silent >= config.suspect_after and not peer.probing:
                    peer.probing = True
                    self.node.start_soon(self._guarded, self._probe, peer, peer.node_id)
            if not self._swept and now - self._started_at >= config.down_after and self.connected:
                self._swept = True
                self.names.sweep({p.node_id for p in self.peers.values() if p.up} | {self.me})
            await trio.sleep(config.heartbeat)

    async def _probe(self, peer: Peer, node_id: str | None) -> None:
        try:
            await self.transport.request(f"{self._prefix}.ctl.{peer.name}.ping", b"", self.config.down_after)
        except NoResponders:
            if peer.up and peer.node_id == node_id:
                self._down(peer, "no one answers its probe")
        except TransportError:
            pass  # the heartbeat timeout decides
        finally:
            peer.probing = False

    def _down(self, peer: Peer, why: str, *, lost: bool = True) -> None:
        """``peer`` is down. ``lost``: it is, not just out of our reach (our own link to
        NATS dropped), so its global names go."""
        if not peer.up:
            return
        peer.up = False
        peer.downs += 1
        self._teardown(peer, why)
        self.node.events.emit("node_down", data={"node": peer.node_id, "why": why})
        if lost and peer.node_id is not None:
            self.names.node_down(peer.node_id)

    def _on_state(self, state: str) -> None:
        if state == "disconnected" or state == "closed":
            was = self.connected
            self.connected = False
            for peer in list(self.peers.values()):
                self._down(peer, "this node's connection to NATS dropped", lost=False)
            if was:
                self.node.events.emit("cluster_disconnected", data={"node": self.me})
        elif state == "reconnected":
            self.connected = True
            self.node.events.emit("cluster_reconnected", data={"node": self.me})

    def _on_publish_failed(self, item: PublishFailed) -> None:
        if not item.subject.startswith(self._prefix + ".p."):
            return
        frame = msgpack.unpackb(item.data)
        kind = frame[3]
        if kind in (MSG, CALL):
            env = self._envelope(frame)
            if env is not None:
                self.node._dead_letter(frame[4], env, "noconnection")
                if kind == CALL:
                    self.node._fail_call(env.ref, NOCONNECTION, frame[4])

    # -- teardown ---------------------------------------------------------------------------

    def _teardown(self, peer: Peer, why: str) -> None:
        """The channel with ``peer`` is gone: tell everyone concerned, once, and start a
        new epoch in both directions."""
        node = self.node
        gone = peer.node_id
        peer.tx_epoch += 1
        peer.tx_seq = peer.acked = 0
        unconfirmed, peer.unconfirmed = peer.unconfirmed, collections.deque()
        for _seq, to, env, size in unconfirmed:
            node._dead_letter(to, env, "unconfirmed", size)
        peer.rx_alive = False
        peer.room.set()
        peer.room = trio.Event()
        if self.connected:
            self._control(peer, RESET, peer.tx_epoch)
        for ref in peer.spawns_out:
            waiter = node._calls.pop(ref, None)
            if isinstance(waiter, _CallWaiter):
                waiter.error = NoConnection(f"a spawn on node {peer.name}", peer.name)
                waiter.fire()
        peer.spawns_out.clear()
        for ref in peer.calls_out:
            node._fail_call(ref, NOCONNECTION, f"node {peer.name}")
        peer.calls_out.clear()
        for ref in peer.calls_in:
            node._calls.pop(ref, None)
        peer.calls_in.clear()
        for ours, target in peer.monitors_in.values():
            proc = node._processes.get(target)
            if proc is not None:
                proc.watchers.pop(ours, None)
        peer.monitors_in.clear()
        held = peer.held
        peer.held = {}
        peer.held_count = 0
        for frames in held.values():
            for frame in frames:
                if frame[3] in (MSG, CALL):
                    self._no_target(peer, frame, "noconnection")
            frames.clear()
        if gone is None:
            return
        for ref, (_done, pid, reason) in list(self._waits.items()):
            if reason is None and pid.node == gone:
                self._waited(ref, NOCONNECTION)
        signals = 0
        for proc in list(node._processes.values()):
            if proc.links:
                for other in [p for p in proc.links if p.node == gone]:
                    proc.links.discard(other)
                    proc.exit_signal(other, NOCONNECTION)
                    signals += 1
            if proc.monitors:
                for ref, target in [(r, t) for r, t in proc.monitors.items() if t.node == gone]:
                    node._down(proc.pid, ref, target, NOCONNECTION)
                    signals += 1
            if proc.watchers:
                for ref in [r for r, w in proc.watchers.items() if w is not None and w.node == gone]:
                    del proc.watchers[ref]
        node.events.emit("channel_reset", data={"node": gone, "why": why, "signals": signals})
        log.info("channel to %s torn down (%s): %d links and monitors told", gone, why, signals)

    # -- introspection ------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return [{"name": self.node.name, "node": self.me, "up": self.connected, "self": True}] + [
            p.info() for p in self.peers.values()]

