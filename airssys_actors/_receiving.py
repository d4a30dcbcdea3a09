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

from ._channel import (CALL, CREDIT, DEMONITOR, DOWN, EXIT, FAILED, FIELDS, LINK, MONITOR, MSG, REPLY,
                       RESET, SPAWN, SPAWNED, UNLINK, Channels, Peer, _pid)
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
            self._control(peer, RESET, peer.tx_epoch)
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
            if type(to) is not str:
                proc = None
            elif to[:1] == "<":
                local = _pid(to)
                proc = node._processes.get(local) if local is not None else None
            else:
                proc = node._resolve(to)  # a name registered here
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
