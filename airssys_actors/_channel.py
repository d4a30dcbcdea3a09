"""Channels between nodes: what one node knows of each other (a :class:`Peer`), the
frames on the wire, and what every part of the remote path shares: sending a frame and
tearing a channel down.

Between two nodes, each direction is a **channel**: an epoch and a sequence number on
every signal. Within an epoch signals arrive in order, without gaps or duplicates;
anything else (a gap, a signal of a dead epoch, the peer declared down, this node's own
connection dropping) **tears the channel down**: every link toward that node gets an
exit signal ``noconnection``, every monitor a ``down`` with ``noconnection``, every
call waiting on it fails with ``noconnection``, each exactly once, and both sides start
a new epoch.

A frame is a msgpack array ``[node_id, epoch, seq, kind, *fields]``. Signals take a
sequence number and a unit of credit; ``CREDIT`` and ``RESET`` are channel control and
take neither.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any, Protocol

import msgpack
import trio

from ._errors import ActorError, MailboxFull, MessageTooLarge, NoConnection, NoSuchProcess
from ._message import Envelope, Kind
from ._pid import Pid, incarnation, node_name
from ._reasons import ExitReason
from ._dataplane import OutboundFull
from ._transport import NotConnected
from ._waiters import RemoteCaller, _CallWaiter

if TYPE_CHECKING:
    import itertools

    from ._clusterconfig import ClusterConfig
    from ._dataplane import DataPlane
    from ._events import EventBus
    from ._globalnames import GlobalNames
    from ._process import Process
    from ._transport import NatsTransport
    from ._wakeup import OneShot

log = logging.getLogger("airssys_actors.cluster")

NOCONNECTION = ExitReason("noconnection")
#: Nodes this node keeps track of at once; past it, a node never heard of is ignored
#: (after forgetting one that is down), so made-up names cannot grow the table.
MAX_PEERS = 1024

# Signals (they take a sequence number and a unit of credit).
MSG, CALL, REPLY, FAILED, LINK, UNLINK, EXIT, MONITOR, DEMONITOR, DOWN, SPAWN, SPAWNED = range(1, 13)
# Channel control (no sequence number, no credit): CREDIT [consumed], RESET [the epoch
# of the peer's it refuses], XOFF / XON [a pid whose mailbox is full / has room again].
CREDIT, RESET, XOFF, XON = 20, 21, 22, 23

#: How many fields each kind carries after the header.
FIELDS = {MSG: 3, CALL: 5, REPLY: 3, FAILED: 4, LINK: 2, UNLINK: 2, EXIT: 4, MONITOR: 3, DEMONITOR: 3,
          DOWN: 4, SPAWN: 5, SPAWNED: 3, CREDIT: 1, RESET: 1, XOFF: 1, XON: 1}

#: Messages held for full mailboxes, from one peer, at most: past it (a sender that does
#: not heed XOFF, or very many full mailboxes at once) they are refused as dead letters.
HELD_LIMIT = 65_536
#: Targets one peer may have marked full (XOFF) toward this node at once.
BLOCKED_LIMIT = 100_000
#: Bytes waiting for the data plane's writer past which an awaiting sender yields to it.
_YIELD_AT = 16 << 10


class RemoteHost(Protocol):
    """What the remote path needs of its node (a :class:`~airssys_actors.Node` is one;
    named here so that the remote path need not import the node, which imports it)."""

    name: str
    node_id: str
    events: EventBus
    _processes: dict[Pid, Process]
    _calls: dict[int, Any]
    _refs: itertools.count[int]
    _exits: Any
    _components: dict[str, Any]
    _nursery: trio.Nursery | None

    def start_soon(self, fn: Any, *args: Any) -> None: ...
    def _resolve(self, to: Pid | str) -> Process | None: ...
    def _caller(self, what: str) -> Process: ...
    def _dead_letter(self, to: object, env: Envelope, reason: str, size: int | None = None) -> None: ...
    def _down(self, watcher: Pid | None, ref: int, pid: Pid | None, reason: ExitReason) -> None: ...
    def _add_monitor(self, watcher: Process | Pid, target: Process) -> int: ...
    def _fail_call(self, ref: int, reason: ExitReason, where: object) -> None: ...
    def _fail_call_error(self, ref: int, error: Exception, replier: Pid | None) -> None: ...
    def _answer_call(self, ref: int, replier: Pid | None, payload: bytes) -> None: ...
    async def _spawn_bytes(self, component: str, *, name: str | None, args: bytes, trap_exits: bool) -> Pid: ...


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
        # Its processes whose mailbox is full (XOFF): sends to them wait for the XON.
        self.blocked: dict[Pid, trio.Event] = {}
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
        # Monitors it holds on our processes: its ref -> (our ref, our target), and back.
        self.monitors_in: dict[int, tuple[int, Pid]] = {}
        self.monitor_refs: dict[int, int] = {}  # our ref -> its ref
        # Our refs waiting on it (calls, requests, spawns), and its calls we are handling.
        self.calls_out: set[int] = set()
        self.calls_out_prune_at = 0
        self.calls_in: set[int] = set()
        self.spawns_out: set[int] = set()
        self.downs = 0

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node_id, "up": self.up, "epoch": self.tx_epoch,
                "sent": self.tx_seq, "unacked": self.tx_seq - self.acked, "downs": self.downs,
                "held": sum(len(q) for q in self.held.values())}


class RemoteRoute:
    """Where ``_deliver`` puts an envelope addressed to a process on another node (it
    stands where a local mailbox would)."""

    __slots__ = ("peer", "pid", "remote")

    def __init__(self, remote: Any, peer: Peer, pid: Pid) -> None:  # remote: the Remote
        self.remote = remote
        self.peer = peer
        self.pid = pid

    def put_nowait(self, env: Envelope) -> None:
        remote, peer = self.remote, self.peer
        if not peer.up:
            raise NoConnection(self.pid, peer.name)
        if self.pid in peer.blocked:
            raise MailboxFull(f"the mailbox of {self.pid} on node {peer.name} is full")
        if peer.tx_seq - peer.acked >= remote.config.window:
            raise MailboxFull(f"no credit toward node {peer.name} ({remote.config.window} signals in flight)")
        try:
            remote.send_envelope(peer, self.pid, env)
        except OutboundFull as exc:
            raise MailboxFull(str(exc)) from None

    async def put(self, env: Envelope) -> None:
        remote, peer = self.remote, self.peer
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            full = peer.blocked.get(self.pid)
            if full is not None and peer.up:
                await full.wait()  # its mailbox was full: until the XON (or a teardown)
                continue
            if peer.up and peer.tx_seq - peer.acked >= remote.config.window:
                await peer.room.wait()  # out of credit: until some comes back
                continue
            try:
                if not peer.up:
                    raise NoConnection(self.pid, peer.name)
                remote.send_envelope(peer, self.pid, env)
            except OutboundFull:
                await remote.plane.wait_for_room()
                continue
            if remote.plane.buffered >= _YIELD_AT:
                # Let the writer put this out while we go on: a sender that never
                # yields would have the wire (and the receiver) idle until its credit ends.
                # Shielded: the message is sent, a cancellation now must not say otherwise.
                await trio.lowlevel.cancel_shielded_checkpoint()
            return


def _pid_text(pid: Pid | None) -> str | None:
    return None if pid is None else str(pid)


#: Pid text seen in frames, parsed: a frame names its target and sender as text, and a
#: busy channel names the same few again and again. Bounded: cleared when full.
_PARSED: dict[str, Pid | None] = {}
_PARSED_MAX = 8192


def _pid(value: object) -> Pid | None:
    """The pid ``value`` is the text of, or None (not text, or not a pid's)."""
    if type(value) is not str:
        return None
    try:
        return _PARSED[value]
    except KeyError:
        pass
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    pid = _PARSED[value] = Pid.parse(value) if len(value) <= 300 else None
    return pid


class Channels:
    """What every part of a node's remote path shares (the base of
    :class:`~airssys_actors._remote.Remote`)."""

    node: RemoteHost
    config: ClusterConfig
    me: str
    peers: dict[str, Peer]
    connected: bool
    transport: NatsTransport
    """The control plane: JetStream KV (the names) and probes, nats-py on its own thread."""
    plane: DataPlane
    """The data plane: every frame and heartbeat, in the node's own trio run."""
    names: GlobalNames
    dropped: int
    _prefix: str
    _waits: dict[int, tuple[OneShot, Pid, ExitReason | None]]
    _changed: trio.Event
    _spawning: dict[int, tuple[Process | None, bool, int]]
    """Remote spawns in flight: ref -> (the caller, link, monitor ref)."""

    def _send(self, peer: Peer, kind: int, *fields: Any) -> None:
        plane = self.plane
        data = msgpack.packb([self.me, peer.tx_epoch, peer.tx_seq + 1, kind, *fields])
        if len(data) > plane.max_payload:
            # Refused here, before it takes a sequence number: the sender is told at once.
            raise MessageTooLarge(len(data), plane.max_payload)
        try:
            plane.publish(peer.subject, data)
        except NotConnected:  # the connection is down (its teardown tells everyone) or closing
            raise NoConnection(peer.name, peer.name) from None
        except OutboundFull:
            if kind == MSG or kind == CALL:
                raise  # the sender is told (and ``send`` waits for room)
            # A signal that cannot go out: the channel has a hole now, so it goes.
            self._teardown(peer, "this node's write buffer to NATS is full")
            raise NoConnection(peer.name, peer.name) from None
        peer.tx_seq += 1

    def _tell(self, peer: Peer, kind: int, *fields: Any) -> None:
        """Send a signal no caller waits on (a link, an exit, a down): it never raises.
        A channel that cannot take it is torn down, and its teardown tells everyone."""
        try:
            self._send(peer, kind, *fields)
        except ActorError:
            pass

    def _control(self, peer: Peer, kind: int, epoch: int, *fields: Any) -> None:
        self._publish(peer.subject, msgpack.packb([self.me, epoch, 0, kind, *fields]))

    def _publish(self, subject: str, data: bytes) -> None:
        """Publish what no sender waits on (channel control, heartbeats, answers to
        probes): with the connection down or leaving there is no one to tell, and a
        lost one is made up for (a credit by the next, a reset by the peer's teardown)."""
        try:
            self.plane.publish(subject, data)
        except (NotConnected, OutboundFull):
            pass

    def _drop(self, subject: str, why: str) -> None:
        self.dropped += 1
        self.node.events.emit("cluster_drop", data={"subject": subject[:200], "why": why[:500]})

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

    def _sendable(self, pid: Pid) -> Peer | None:
        """The peer to tell about ``pid``, or None when the channel is gone (its
        teardown has told, or will tell, everyone concerned)."""
        peer = self.peers.get(node_name(pid.node))
        if peer is None or not peer.up or peer.node_id != pid.node or not self.connected:
            return None
        return peer

    def _unreachable(self, pid: Pid) -> bool:
        peer = self.peers.get(node_name(pid.node))
        return peer is None or not peer.up or not self.connected or incarnation(pid.node) > incarnation(peer.node_id or "")

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
        refused = peer.rx_epoch
        peer.rx_alive = False
        peer.room.set()
        peer.room = trio.Event()
        for full in peer.blocked.values():
            full.set()
        peer.blocked.clear()
        if self.connected:
            # Our new epoch, and the one of its we refuse from now on: if it still sends
            # in that one, it tears down too (even if it never heard from us).
            self._control(peer, RESET, peer.tx_epoch, refused)
        for ref in peer.spawns_out:
            self._spawning.pop(ref, None)
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
        peer.monitor_refs.clear()
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

    def _peer_up(self, peer: Peer) -> None:
        self.node.events.emit("node_up", data={"node": peer.node_id})
        self._changed.set()
        self._changed = trio.Event()

    def _flush_credit(self, peer: Peer, force: bool = False) -> None:
        if peer.consumed > peer.credited and (force or (peer.up and self.connected)):
            peer.credited = peer.consumed
            self._control(peer, CREDIT, peer.rx_epoch, peer.consumed)

    def _consumed(self, peer: Peer) -> None:
        peer.consumed += 1
        if peer.consumed - peer.credited >= max(1, self.config.window // 4):
            self._flush_credit(peer)

    def _no_target(self, peer: Peer, frame: list[Any], reason: str = "noproc") -> None:
        kind, to = frame[3], frame[4]
        env = self._envelope(frame)
        if env is None:
            return
        if kind == CALL:
            caller = RemoteCaller(self, peer, env.ref, env.sender, 0.0)
            self.answer(caller, -1, to if isinstance(to, str) else None, None, ["exit", ExitReason(reason).to_wire()])
        self.node._dead_letter(to, env, reason)

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

    def answer(self, waiter: RemoteCaller, ref: int, replier: Pid | str | None, payload: bytes | None,
               failure: Any = None) -> None:
        """Answer a call from another node: its reply, or ``failure`` (``["exit", reason]``
        or ``["error", text]``)."""
        peer = waiter.peer
        peer.calls_in.discard(ref)
        if not peer.up or not self.connected or peer.node_id is None:
            return  # its teardown has told the caller
        where = None if replier is None else str(replier)
        # Never raises: whatever goes wrong, the caller is answered or its channel goes.
        try:
            if payload is not None:
                try:
                    self._send(peer, REPLY, waiter.ref, where, payload)
                    return
                except (MessageTooLarge, OutboundFull) as exc:
                    failure = ["error", f"the reply could not be sent: {exc}"]
            self._send(peer, FAILED, waiter.ref, where, failure[0], failure[1])
        except (NoConnection, MessageTooLarge):
            pass  # the channel is gone (or the error text is huge): its teardown tells the caller
        except OutboundFull:
            self._teardown(peer, "this node's write buffer to NATS is full")

    def _start_soon(self, fn: Any, *args: Any) -> bool:
        """A task in the node's nursery, unless the node is past running it (False)."""
        nursery = self.node._nursery
        if nursery is None or nursery.cancel_scope.cancel_called:
            return False
        nursery.start_soon(self._guarded, fn, *args)
        return True

    async def _guarded(self, fn: Any, *args: Any) -> None:
        """Run a task of the remote path in the node's nursery: whatever a peer sent,
        its failure is a dropped frame, never the node's end."""
        try:
            await fn(*args)
        except Exception as exc:
            log.exception("cluster task %s failed", getattr(fn, "__name__", fn))
            self._drop(getattr(args[0], "subject", "?"), f"{type(exc).__name__}: {exc}")

    def _waited(self, ref: int, reason: ExitReason) -> None:
        entry = self._waits.get(ref)
        if entry is not None and entry[2] is None:
            self._waits[ref] = (entry[0], entry[1], reason)
            entry[0].fire()
