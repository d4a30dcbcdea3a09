"""Receiving: every batch the transport hands over, checked field by field, accepted into
its channel (epoch and sequence) and applied: messages into mailboxes (held in order
while a mailbox is full), signals to processes, answers to waiting calls, remote spawns.
What does not check out is dropped with a ``cluster_drop`` event, never the node's end.
"""

from __future__ import annotations

import collections
from typing import Any

import msgpack
import trio

from ._channel import (BLOCKED_LIMIT, CALL, CREDIT, DEMONITOR, DOWN, EXIT, FAILED, FIELDS, HELD_LIMIT, LINK, MONITOR,
                       MSG, REPLY, RESET, SPAWN, SPAWNED, UNLINK, XOFF, XON, Channels, Peer, _pid)
from ._errors import ActorError, MailboxFull, SpawnFailed
from ._message import Envelope, Kind
from ._pid import incarnation, node_name
from ._process import Process
from ._reasons import KILLED, NOPROC, ExitReason
from ._transport import Inbound, KvChange, StateChange
from ._waiters import RemoteCaller, _CallWaiter, _RequestWaiter


class Receiving(Channels):
    """The inbound half of the remote path."""

    _inbox: str
    _ctl: str
    _reset_sent: set[tuple[str, int]]
    _now: float

    def _on_data(self, messages: list[tuple[str, bytes]]) -> None:
        """A read's worth of the data plane: frames and heartbeats, in arrival order."""
        inbox, beats = self._inbox, self._prefix + ".hb."
        self._now = trio.current_time()  # one clock reading per read: when they were heard
        for subject, data in messages:
            try:
                if subject.startswith(inbox):
                    self._on_frame(subject[len(inbox):], data, subject)
                elif subject.startswith(beats):
                    self._on_heartbeat(subject[len(beats):], data)
                else:
                    self._drop(subject, "unexpected subject")
            except Exception as exc:  # a bug or a hostile frame: never the node's end
                self._drop(subject, f"{type(exc).__name__}: {exc}")

    def _on_batch(self, items: list[Any]) -> None:
        """What the control plane (nats-py's thread) hands over: probes to answer, the
        names bucket's changes, its connection's state."""
        for item in items:
            try:
                if type(item) is Inbound:
                    self._on_inbound(item)
                elif type(item) is KvChange:
                    self.names.on_change(item)
                elif type(item) is StateChange:
                    # Channels follow the data plane's connection; this one carries no signal.
                    self.node.events.emit(f"cluster_control_{item.state}", data={"node": self.me})
            except Exception as exc:  # a bug or a hostile message: never the node's end
                self._drop(getattr(item, "subject", "?"), f"{type(exc).__name__}: {exc}")

    def _on_inbound(self, item: Inbound) -> None:
        subject = item.subject
        if subject.startswith(self._ctl):
            self._on_ctl(subject[len(self._ctl):], item)
        else:
            self._drop(subject, "unexpected subject")

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
            self._control(peer, RESET, peer.tx_epoch, peer.rx_epoch)
            self._peer_up(peer)

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
        if not (type(epoch) is int and type(seq) is int and type(kind) is int and len(frame) == 4 + FIELDS.get(kind, -99)):
            self._drop(subject, "malformed frame header")
            return
        peer = self.peers.get(name)
        if peer is None or peer.node_id != node_id:  # the usual case skips these checks
            if not (isinstance(node_id, str) and node_name(node_id) == name):
                self._drop(subject, "malformed frame header")
                return
            peer = self._adopt(name, node_id)
            if peer is None:
                self._drop(subject, "frame of an older incarnation")
                return
        peer.heard = self._now
        if kind >= CREDIT:
            if seq != 0:
                self._drop(subject, "channel control with a sequence number")
            else:
                self._on_control(peer, kind, epoch, frame[4])
            return
        if epoch > peer.rx_epoch:
            self._open(peer, epoch)
        if epoch < peer.rx_epoch or not peer.rx_alive:
            self._stale(peer, frame)
            return
        if seq != peer.rx_seq + 1:
            self._teardown(peer, f"sequence gap: expected {peer.rx_seq + 1}, got {seq}")
            self._stale(peer, frame)
            return
        peer.rx_seq = seq
        self._dispatch(peer, frame)

    def _open(self, peer: Peer, epoch: int) -> None:
        """The peer started a new epoch toward us: it tore the channel down; so do we
        (if we had not already), then take the new one."""
        if peer.rx_alive:
            self._teardown(peer, "reset by peer")
        peer.rx_epoch, peer.rx_alive, peer.rx_seq, peer.consumed, peer.credited = epoch, True, 0, 0, 0
        peer.up = True

    def _on_control(self, peer: Peer, kind: int, epoch: int, value: Any) -> None:
        if kind == RESET:
            # ``value``: the epoch of ours it refuses. If it is the one we send in, our
            # channel is dead at its end even if we never heard from it: tear down.
            if value == peer.tx_epoch and type(value) is int:
                self._teardown(peer, "reset by peer")
            if epoch > peer.rx_epoch:
                self._open(peer, epoch)
            return
        if epoch != peer.tx_epoch:
            return  # about an epoch of ours that is gone
        if kind == CREDIT:
            if type(value) is int and peer.acked < value <= peer.tx_seq:
                peer.acked = value
                unconfirmed = peer.unconfirmed
                # A count of consumed signals: the receiver has every signal up to that
                # sequence number (consumed, or held there, where a teardown accounts
                # for it), so only later casts are still unconfirmed.
                while unconfirmed and unconfirmed[0][0] <= value:
                    unconfirmed.popleft()
                peer.room.set()
                peer.room = trio.Event()
            return
        pid = _pid(value)
        if pid is None or pid.node != peer.node_id:
            self._drop(peer.subject, "flow control for a pid not on that node")
        elif kind == XOFF:
            if pid not in peer.blocked and len(peer.blocked) < BLOCKED_LIMIT:
                peer.blocked[pid] = trio.Event()
        else:
            full = peer.blocked.pop(pid, None)
            if full is not None:
                full.set()

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
        if key not in self._reset_sent:
            if len(self._reset_sent) > 10_000:
                self._reset_sent.clear()
            self._reset_sent.add(key)
            self._control(peer, RESET, peer.tx_epoch, frame[1])

    def _dispatch(self, peer: Peer, frame: list[Any]) -> None:
        # Every signal is consumed as it arrives (credit flows back): a message for a
        # full mailbox is held here, in order, as that mailbox's overflow, and its
        # sender is told to wait (XOFF) until the held ones are in (XON).
        self._consumed(peer)
        kind = frame[3]
        if kind == MSG or kind == CALL:
            self._message(peer, frame)
        elif kind == REPLY or kind == FAILED:
            self._on_answer(peer, frame)
        elif kind == SPAWN:
            self._on_spawn_request(peer, frame)
        elif kind == SPAWNED:
            self._on_spawned(peer, frame)
        else:
            self._signal(peer, frame)

    def _message(self, peer: Peer, frame: list[Any]) -> None:
        node = self.node
        to = frame[4]
        if type(to) is not str:
            proc = None
        elif to[:1] == "<":
            local = _pid(to)
            proc = node._processes.get(local) if local is not None else None
        else:
            proc = node._resolve(to)  # a name registered here (or a global one held here)
        if proc is None or not proc.alive:
            self._no_target(peer, frame)
            return
        held = peer.held.get(proc.pid)
        if held is None:
            if self._deliver_frame(peer, proc, frame):
                return
            if node.closing or not self._start_soon(self._drain_held, peer, proc, held := collections.deque()):
                self._no_target(peer, frame, "mailbox_full")
                return
            peer.held[proc.pid] = held
            self._control(peer, XOFF, peer.rx_epoch, str(proc.pid))
        if len(held) >= 2 * self.config.window or peer.held_count >= HELD_LIMIT:
            # More than a sender that heeds XOFF can have in flight: refused, not kept.
            self._no_target(peer, frame, "mailbox_full")
            return
        held.append(frame)
        peer.held_count += 1

    def _deliver_frame(self, peer: Peer, proc: Process, frame: list[Any]) -> bool:
        """Put a MSG or CALL frame in ``proc``'s mailbox; False if it is full (True when
        delivered, or refused with an answer or a dead letter)."""
        env = self._envelope(frame)
        if env is None:
            self._drop(peer.subject, "malformed message frame")
            return True
        if not proc.alive:
            self._no_target(peer, frame)
            return True
        if env.kind == Kind.CALL:
            their_ref = env.ref
            env.ref = ref = next(self.node._refs)
            self.node._calls[ref] = RemoteCaller(self, peer, their_ref, env.sender, self._now + frame[7])
            peer.calls_in.add(ref)
        try:
            proc.mailbox.put_nowait(env)
        except MailboxFull:
            if env.kind == Kind.CALL:
                self.node._calls.pop(env.ref, None)
                peer.calls_in.discard(env.ref)
            return False
        except ActorError as exc:  # closed, or too large for this mailbox
            if env.kind == Kind.CALL:
                waiter = self.node._calls.pop(env.ref)
                self.answer(waiter, env.ref, proc.pid, None, ["error", str(exc)])
            else:
                self.node._dead_letter(proc.pid, env, "noproc" if "closed" in str(exc) else "message_too_large")
        return True

    async def _drain_held(self, peer: Peer, proc: Process, held: collections.deque[list[Any]]) -> None:
        """Put ``proc``'s held messages in its mailbox, in order, as it makes room; then
        tell the sender it may send again. A teardown empties the deque meanwhile (and
        accounts for what was in it)."""
        epoch = peer.rx_epoch
        try:
            while held and proc.alive:
                if self._deliver_frame(peer, proc, held[0]):
                    held.popleft()
                    peer.held_count -= 1
                else:
                    await proc.mailbox._senders.park()
        finally:
            if peer.held.get(proc.pid) is held:
                del peer.held[proc.pid]
                if peer.rx_epoch == epoch and peer.rx_alive:
                    self._control(peer, XON, epoch, str(proc.pid))
            peer.held_count -= len(held)
            reason = "noproc" if not proc.alive else "noconnection"  # else: the node is stopping
            for frame in held:
                self._no_target(peer, frame, reason)
            held.clear()

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
                self._tell(peer, EXIT, str(b), str(a), NOPROC.to_wire(), True)
            else:
                proc.links.add(a)
        elif kind == UNLINK:
            if a is None or a.node != peer.node_id:  # only its own processes' links
                return self._drop(peer.subject, "malformed unlink")
            proc = node._processes.get(b) if b is not None else None
            if proc is not None:
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
                self._tell(peer, DOWN, str(watcher), str(b), their_ref, reason.to_wire())
                return
            if len(peer.monitors_in) >= 1_000_000:
                self._tell(peer, DOWN, str(watcher), str(b), their_ref, ExitReason("system_limit").to_wire())
                return
            self._monitored(peer, their_ref, watcher, proc)
        elif kind == DEMONITOR:
            entry = peer.monitors_in.pop(frame[6], None) if type(frame[6]) is int else None
            if entry is not None:
                peer.monitor_refs.pop(entry[0], None)
                proc = node._processes.get(entry[1])
                if proc is not None:
                    proc.watchers.pop(entry[0], None)
        elif kind == DOWN:
            watcher, ref = a, frame[6]
            if watcher == self._waiter and type(ref) is int:
                self._waited(ref, ExitReason.from_wire(frame[7]))
                return
            if b is None or b.node != peer.node_id:  # only of its own processes
                return self._drop(peer.subject, "malformed down")
            proc = node._processes.get(watcher) if watcher is not None else None
            if proc is None or type(ref) is not int or proc.monitors.get(ref) != b:
                return
            node._down(watcher, ref, b, ExitReason.from_wire(frame[7]))

    def _monitored(self, peer: Peer, their_ref: int, watcher: Any, proc: Process) -> None:
        ours = self.node._add_monitor(watcher, proc)
        peer.monitors_in[their_ref] = (ours, proc.pid)
        peer.monitor_refs[ours] = their_ref

    def _on_answer(self, peer: Peer, frame: list[Any]) -> None:
        ref, replier = frame[4], _pid(frame[5])
        where = frame[5][:300] if isinstance(frame[5], str) else f"a process on node {peer.name}"
        if type(ref) is not int:
            return self._drop(peer.subject, "malformed reply")
        if ref not in peer.calls_out:
            # Not a call of ours to that node (refs are small numbers: a peer must not
            # answer calls made to another node, or to this one).
            return self._drop(peer.subject, "an answer to no call made to that node")
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

    def _on_spawn_request(self, peer: Peer, frame: list[Any]) -> None:
        if type(frame[4]) is not int:
            return self._drop(peer.subject, "malformed spawn")
        if self.node.closing or not self._start_soon(self._on_spawn, peer, frame):
            self._refuse_spawn(peer, frame[4], ExitReason("shutdown", f"node {self.node.name} is stopping"))

    def _refuse_spawn(self, peer: Peer, ref: int, reason: ExitReason) -> None:
        if self._sendable_peer(peer):
            self._tell(peer, SPAWNED, ref, None, reason.to_wire())

    async def _on_spawn(self, peer: Peer, frame: list[Any]) -> None:
        ref, requester, component, args, options = frame[4], _pid(frame[5]), frame[6], frame[7], frame[8]
        node = self.node
        if not (isinstance(component, str) and isinstance(args, bytes) and isinstance(options, dict)):
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
            self._refuse_spawn(peer, ref, exc.reason if isinstance(exc, SpawnFailed) else ExitReason("exit", str(exc)))
            return
        if not self._sendable_peer(peer):
            return
        self._tell(peer, SPAWNED, ref, str(pid), None)
        proc = node._processes.get(pid)
        if link and requester is not None:
            if proc is not None and proc.alive:
                proc.links.add(requester)
            else:
                self._tell(peer, EXIT, str(pid), str(requester), node._exits.get(pid, NOPROC).to_wire(), True)
        if mref and requester is not None and type(mref) is int:
            if proc is not None and proc.alive:
                self._monitored(peer, mref, requester, proc)
            else:
                self._tell(peer, DOWN, str(requester), str(pid), mref, node._exits.get(pid, NOPROC).to_wire())

    def _sendable_peer(self, peer: Peer) -> bool:
        return peer.up and self.connected

    def _on_spawned(self, peer: Peer, frame: list[Any]) -> None:
        ref, pid_text, failure = frame[4], frame[5], frame[6]
        if type(ref) is not int or ref not in peer.spawns_out:
            return self._drop(peer.subject, "an answer to no spawn made on that node")
        peer.spawns_out.discard(ref)
        caller, link, mref = self._spawning.pop(ref, (None, False, 0))
        waiter = self.node._calls.get(ref)
        pid = _pid(pid_text)
        if pid is not None and pid.node != peer.node_id:
            pid = None
        if pid is not None:
            live = isinstance(waiter, _CallWaiter) and caller is not None and caller.alive
            if live:
                # Now, before any later signal of the child's (in this very batch) is read.
                if link:
                    caller.links.add(pid)
                if mref:
                    caller.monitors[mref] = pid
            elif link or mref:
                # Its spawner gave up waiting (or exited): no one knows of this child, so
                # it does not outlive that, as OTP's abandoned spawn_request.
                self._tell(peer, EXIT, None, str(pid), KILLED.to_wire(), False)
        if not isinstance(waiter, _CallWaiter):
            return
        if pid is not None:
            waiter.payload = pid_text.encode()
        else:
            waiter.error = SpawnFailed(ExitReason.from_wire(failure))
        waiter.fire()

    def _on_ctl(self, op: str, item: Inbound) -> None:
        if item.reply is None:
            return self._drop(item.subject, "control request without a reply subject")
        if op == "ping":
            self._publish(item.reply, self.me.encode())
        elif op == "nodes":
            self._publish(item.reply, msgpack.packb([p.info() for p in self.peers.values()]))
        else:
            self._drop(item.subject, f"unknown control operation {op[:50]!r}")

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
