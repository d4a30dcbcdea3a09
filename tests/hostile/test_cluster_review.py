"""Review of the cluster path (R14): each test pins a promise of issue #14 that a line of
``_remote.py`` / ``_globalnames.py`` breaks (or, where marked, one no other test pins).
Real nats-server, real nodes (in this process or node OS processes); a raw
``NatsTransport`` client where a hostile or impersonating peer is the attack."""

from __future__ import annotations

import signal
import time

import msgpack
import pytest
import trio

from airssys_actors import Actor, CallFailed, CallTimeout, Capabilities, Component, Kind, Node, Pid
from airssys_actors._channel import DOWN, EXIT, MSG, REPLY, SPAWN, SPAWNED, UNLINK
from airssys_actors._transport import NatsTransport

from ..cluster.conftest import nats_server, nats_url, node_processes  # noqa: F401 - fixtures
from ..cluster.nodes import ROOT, config, wait_for, wait_up

COMPONENTS = ROOT / "examples" / "components"


class Inbox(Actor):
    """Keeps what it gets; traps exits; links to / monitors ``args`` in init."""

    async def init(self, ctx, args):
        ctx.trap_exits = True
        self.log = []
        ctx.node.inboxes.append(self.log)
        if isinstance(args, dict):
            if "link" in args:
                ctx.link(args["link"])
            if "monitor" in args:
                ctx.monitor(args["monitor"])

    async def handle(self, ctx, msg):
        if msg.kind == Kind.EXIT and msg.sender is None:
            ctx.stop("shutdown")  # the node stops: no need to wait for the kill
            return None
        if msg.kind == Kind.CALL:
            return len(self.log)
        self.log.append((msg.kind.name.lower(), msg.value, None if msg.sender is None else str(msg.sender)))
        return None


async def inbox(node: Node, args=None) -> tuple[Pid, list]:
    if not hasattr(node, "inboxes"):
        node.inboxes = []
    pid = await node.spawn(Inbox, args=args)
    return pid, node.inboxes[-1]


class Slow(Actor):
    """Takes ``args`` seconds per message (a mailbox that fills)."""

    async def init(self, ctx, args):
        self.delay = float(args or 3600)

    async def handle(self, ctx, msg):
        await trio.sleep(self.delay)
        return "late"


class Spawner(Actor):
    """On the call ``[node, component, options]``: spawns there, answers the pid text."""

    async def init(self, ctx, args):
        ctx.trap_exits = True
        self.log = []
        ctx.node.inboxes.append(self.log)

    async def handle(self, ctx, msg):
        if msg.kind == Kind.EXIT and msg.sender is None:
            ctx.stop("shutdown")
            return None
        if msg.kind == Kind.CALL:
            where, component, options = msg.value
            try:
                return str(await ctx.node.spawn(component, node=where, **options))
            except Exception as exc:
                return ["error", f"{type(exc).__name__}: {exc}"]
        self.log.append((msg.kind.name.lower(), msg.value, None if msg.sender is None else str(msg.sender)))
        return None


def stall(seconds: float) -> None:
    """Hold this thread (every in-process node's event loop) as a GC pause, a long inline
    guest or SIGSTOP would."""
    time.sleep(seconds)


# -- channels ------------------------------------------------------------------------------


async def test_a_one_way_channel_reset_by_the_receiver_tears_down_the_sender_too(nats_url):  # noqa: F811
    """Only ``a`` ever sent sequenced frames toward ``b`` (``b`` answered only with credit).
    ``b`` tears the channel down (here: a gap in ``a``'s sequence, forged by a raw client
    publishing as ``a``) and resets. ``a`` must tear its side down too: its link fires with
    noconnection and its later messages are not dead letters of a dead epoch forever (nor
    its sender blocked for want of credit)."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        q, q_log = await inbox(b)
        p, p_log = await inbox(a, {"link": str(q)})
        await wait_for(lambda: p in b._processes[q].links, timeout=5)
        gap = NatsTransport(config(nats_url), lambda items: None)
        await gap.start([])
        try:
            channel = a._remote.peers["b"]
            gap.publish("air.default.p.b.a", msgpack.packb([a.node_id, channel.tx_epoch, channel.tx_seq + 5, MSG,
                                                            str(q), None, msgpack.packb("gap")]))
            with trio.fail_after(8):
                await wait_for(lambda: q_log, timeout=8)
        finally:
            await gap.close()
        with trio.fail_after(8):
            assert q_log == [("exit", "noconnection", str(p))]
            # a's side of the same link fires too (exactly once) ...
            await wait_for(lambda: p_log, timeout=4)
        await trio.sleep(0.3)
        assert p_log == [("exit", "noconnection", str(q))]
        # ... and a's messages reach b again, in a new epoch.
        with trio.fail_after(6):
            for i in range(20):
                await a.send(q, ["after", i])
            await wait_for(lambda: len(q_log) == 21, timeout=4)
        assert [d.reason for d in b.dead_letters()] == ["noconnection"]  # the forged frame


async def test_held_messages_for_a_process_that_dies_are_dead_letters_and_held_calls_fail(nats_url):  # noqa: F811
    """Signals held for a full mailbox whose process then dies: every held message is a
    dead letter and every held call fails at once with noproc, none vanishes."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        slow = await b.spawn(Slow, mailbox_capacity=1)
        await a.send(slow, "busy")  # being handled
        await a.send(slow, "queued")  # fills the mailbox
        sent = 0
        with trio.fail_after(5):
            while slow not in a._remote.peers["b"].blocked:  # b held one and said XOFF
                a.send_nowait(slow, ["held", sent])
                sent += 1
                await trio.sleep(0.01)
        await wait_for(lambda: b._remote.peers["a"].held_count == sent, timeout=5)
        before = b.dead_letter_count

        outcome: list[object] = []

        async def held_call() -> None:
            try:
                outcome.append(await a.call(slow, "held call", timeout=3))
            except (CallFailed, CallTimeout) as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(held_call)  # waits for the XON: b's mailbox for it is full
            await trio.sleep(0.2)
            b.kill(slow)
        assert len(outcome) == 1
        assert isinstance(outcome[0], CallFailed), f"the held call was not answered: {outcome[0]!r}"
        assert outcome[0].reason.kind == "noproc"
        # "queued" (in the mailbox) + the held casts + the call: all dead letters.
        await wait_for(lambda: b.dead_letter_count - before >= sent + 2, timeout=3)
        assert b._remote.peers["a"].held_count == 0 and not b._remote.peers["a"].held


# -- failure detection ------------------------------------------------------------------------


class Lingering(Actor):
    """Traps exits and takes ``args`` seconds to stop (a slow shutdown)."""

    async def init(self, ctx, args):
        ctx.trap_exits = True
        self.delay = float(args)

    async def handle(self, ctx, msg):
        if msg.kind == Kind.EXIT:
            await trio.sleep(self.delay)
            ctx.stop("shutdown")


async def test_a_peer_lost_while_the_node_stops_does_not_crash_the_node(nats_url, node_processes):  # noqa: F811
    """The heartbeat task runs until the processes are stopped; a peer that goes silent
    meanwhile is probed from a node that is ``closing``: that must not raise into the
    node's nursery (NodeClosed out of ``start_soon``)."""
    b = node_processes("b")
    with trio.fail_after(15):
        async with Node("t", cluster=config(nats_url), shutdown_timeout=3) as t:
            await wait_up(t, "b")
            await t.spawn(Lingering, args=1.5)
            b.signal(signal.SIGSTOP)  # silent from now on: suspect while t stops
        # Reaching here without an exception is the property.
    b.signal(signal.SIGCONT)


# -- global names -----------------------------------------------------------------------------


async def test_a_stalled_node_does_not_delete_the_global_names_of_live_nodes(nats_url):  # noqa: F811
    """A node whose own event loop stalled (a GC pause, a long inline guest, SIGSTOP)
    must not take its peers' silence, which it caused, as their death and delete their
    global names: their processes are alive and keep their names. (Here both loops
    stall; only ``b`` has timings short enough to act on it.)"""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        pa, _ = await inbox(a)
        await a.register_global("svc-a", pa)
        await wait_for(lambda: b.whereis_global("svc-a") == pa, timeout=5)
        stall(1.0)  # b's loop stalls past its down_after; a and its process stay alive
        await wait_up(b, "a", timeout=5)
        await trio.sleep(1.0)  # any delete in flight lands
        assert a.is_alive(pa)
        assert a.whereis_global("svc-a") == pa, "b deleted a's name though a never went down"
        assert b.whereis_global("svc-a") == pa


# -- remote spawn -----------------------------------------------------------------------------


class FakeNode:
    """A raw client speaking the frame protocol as node ``b`` (incarnation 1): it
    heartbeats, and collects the frames node ``a`` sends it."""

    node_id = "b:1"

    def __init__(self, url: str) -> None:
        self.frames: list[list] = []
        self.client = NatsTransport(config(url), self._on_batch)
        self.seq = 0

    def _on_batch(self, items) -> None:
        for item in items:
            data = getattr(item, "data", None)
            if data and getattr(item, "subject", "").startswith("air.default.p.b."):
                self.frames.append(msgpack.unpackb(data))

    async def beat(self) -> None:
        n = 0
        while True:
            n += 1
            self.client.publish("air.default.hb.b", msgpack.packb([self.node_id, n]))
            await trio.sleep(0.05)

    def send(self, kind: int, *fields) -> None:
        self.seq += 1
        self.client.publish("air.default.p.a.b", msgpack.packb([self.node_id, 1, self.seq, kind, *fields]))


@pytest.mark.parametrize("how", ["link", "monitor"])
async def test_a_spawned_child_that_exits_at_once_still_signals_the_spawner(nats_url, how):  # noqa: F811
    """spawn(node=..., link=True / monitor=True) is atomic: the child's EXIT / DOWN that
    follows its SPAWNED answer at once (the same batch) must reach the spawner, not be
    dropped because the spawner has not resumed yet to record the link / monitor."""
    fake = FakeNode(nats_url)
    await fake.client.start(["air.default.p.b.>"])
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake.beat)  # b stays up until a has stopped
            # a's own detector is slowed: the stall below must not make it suspect b.
            async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a:
                await wait_up(a, "b")
                a.inboxes = []
                spawner = await a.spawn(Spawner)
                log = a.inboxes[-1]
                answer: list = []

                async def spawn() -> None:
                    answer.append(await a.call(spawner, ["b", "crasher", {how: True}], timeout=5))

                nursery.start_soon(spawn)
                with trio.fail_after(5):
                    await wait_for(lambda: any(f[3] == SPAWN for f in fake.frames), timeout=5)
                frame = next(f for f in fake.frames if f[3] == SPAWN)
                ref, requester, options = frame[4], frame[5], frame[8]
                child = "<b:1.7>"
                # The real node does this when the child is gone by the time it answers
                # (Remote._on_spawn): SPAWNED, then at once the EXIT / DOWN.
                fake.send(SPAWNED, ref, child, None)
                if how == "link":
                    fake.send(EXIT, child, requester, "noproc", True)
                else:
                    fake.send(DOWN, requester, child, options["monitor"], "noproc")
                stall(0.3)  # both frames reach a's queue meanwhile: one batch, as from a real node
                with trio.fail_after(5):
                    await wait_for(lambda: answer, timeout=5)
                assert answer == [child]
                with trio.fail_after(3):
                    await wait_for(lambda: log, timeout=3)
                assert [e[:2] for e in log] == [("exit" if how == "link" else "down", "noproc")]
            nursery.cancel_scope.cancel()
    finally:
        await fake.client.close()


async def test_a_spawn_link_that_timed_out_leaves_no_orphan_linked_to_no_one(nats_url):  # noqa: F811
    """The spawner gave up waiting (its timeout) while the other node did start the child,
    linked to the spawner. When the spawner then exits, the child must get the exit
    signal (or be stopped when the late answer comes): no orphan that no link ever ends."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        b.register_component(Component.load(COMPONENTS / "counter.wat"), "counter", capabilities=Capabilities())
        await wait_up(a, "b")
        await wait_up(b, "a")
        a.inboxes = []
        spawner = await a.spawn(Spawner)
        events = b.subscribe({"spawn", "exit"})
        answer = await a.call(spawner, ["b", "counter", {"link": True, "timeout": 0}], timeout=5)
        assert answer[0] == "error" and "no answer" in answer[1]
        spawned = await events.wait_for(lambda e: e.kind == "spawn", timeout=5)  # b did start it
        child = spawned.pid
        # Stopped when the late answer came (or by the spawner's exit): never an orphan.
        a.kill(spawner)
        with trio.fail_after(5):
            await wait_for(lambda: child not in b._processes, timeout=5)
        assert b.exit_reason(child).kind == "killed"


# -- links and monitors toward a lost node -------------------------------------------------------


@pytest.mark.parametrize("how", ["link", "monitor"])
async def test_a_link_or_monitor_made_after_the_node_is_lost_fires_noconnection(nats_url, node_processes, how):  # noqa: F811
    """Erlang: linking to / monitoring a pid of a node that is down gives an exit signal /
    a DOWN with noconnection at once; it does not raise into the process."""
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        echo = b.pids["echo"]
        b.kill()
        await wait_for(lambda: not any(n["name"] == "b" and n["up"] for n in t.cluster_nodes()), timeout=5)
        t.inboxes = []
        pid = await t.spawn(Inbox, args={how: echo})  # init links / monitors: must not fail
        log = t.inboxes[-1]
        with trio.fail_after(3):
            await wait_for(lambda: log, timeout=3)
        await trio.sleep(0.3)
        assert [e[:2] for e in log] == [("exit" if how == "link" else "down", "noconnection")]
        assert t.is_alive(pid)


# -- global names, continued ---------------------------------------------------------------------


async def test_a_global_name_is_gone_from_the_bucket_when_its_node_stops(nats_url):  # noqa: F811
    """A node that stops cleanly removes its processes' names before it leaves (no peer is
    there to notice it is gone, and the next start's sweep may be days away)."""
    names = [f"svc{i}" for i in range(20)]
    async with Node("a", cluster=config(nats_url)) as a:
        for name in names:
            pid, _ = await inbox(a)
            await a.register_global(name, pid)
    client = NatsTransport(config(nats_url), lambda items: None)
    await client.start([])
    try:
        await client.kv_bucket("AIR_default_NAMES", history=1)
        left = [name for name in names if await client.kv_get("AIR_default_NAMES", "n." + name.encode().hex())]
        assert left == []
    finally:
        await client.close()


# -- forged answers and signals from a peer -------------------------------------------------------


class Hostile:
    """A raw client that says it is node ``z`` (incarnation 1) and sends sequenced frames
    to node ``a`` in order (so only what the frames say is wrong, never the channel)."""

    node_id = "z:1"

    def __init__(self, url: str) -> None:
        self.client = NatsTransport(config(url), lambda items: None)
        self.seq = 0

    async def start(self) -> None:
        await self.client.start([])
        self.client.publish("air.default.hb.z", msgpack.packb([self.node_id, 1]))

    def send(self, kind: int, *fields) -> None:
        self.seq += 1
        self.client.publish("air.default.p.a.z", msgpack.packb([self.node_id, 1, self.seq, kind, *fields]))


class Later(Actor):
    """Answers a call with ``"real"`` after ``args`` seconds (the reply is deferred)."""

    async def init(self, ctx, args):
        self.delay = float(args)

    async def handle(self, ctx, msg):
        if msg.kind == Kind.CALL:
            await trio.sleep(self.delay)
            return "real"
        return None


async def test_a_peer_cannot_answer_a_call_it_was_never_sent(nats_url):  # noqa: F811
    """REPLY / FAILED frames name a ref: only a ref of a call this node sent to that very
    peer may be answered by it. A peer answering any ref (they are small sequential
    numbers) would answer local calls, and calls sent to other nodes, with its own data."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a:
        later = await a.spawn(Later, args=0.5)
        hostile = Hostile(nats_url)
        await hostile.start()
        try:
            await wait_up(a, "z")
            results: list = []

            async def local_call() -> None:
                results.append(await a.call(later, "question", timeout=5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(local_call)
                await trio.sleep(0.05)
                for ref in range(1, 200):  # refs are guessable: try them all
                    hostile.send(REPLY, ref, None, msgpack.packb("forged"))
            assert results == ["real"]
        finally:
            await hostile.client.close()


async def test_a_peer_cannot_forge_a_down_for_a_process_not_on_it(nats_url):  # noqa: F811
    """A DOWN from node z may only report the exit of a process of z: it cannot tell a's
    watcher that a's (or another node's) live process is gone."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a:
        target, _ = await inbox(a)
        watcher, log = await inbox(a, {"monitor": str(target)})
        ref = next(iter(a._processes[watcher].monitors))
        hostile = Hostile(nats_url)
        await hostile.start()
        try:
            await wait_up(a, "z")
            hostile.send(DOWN, str(watcher), str(target), ref, "killed")
            await trio.sleep(0.5)
            assert a.is_alive(target)
            assert log == [], "a forged DOWN reached the watcher of a live local process"
        finally:
            await hostile.client.close()


async def test_a_peer_cannot_unlink_a_link_that_is_not_its_own(nats_url):  # noqa: F811
    """An UNLINK from node z may only undo a link with a process of z. Forged for a link
    between a's process and c's process, it would leave a deaf to c's process's exit."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("c", cluster=config(nats_url, suspect_after=20, down_after=30)) as c:
        await wait_up(a, "c")
        await wait_up(c, "a")
        far, _ = await inbox(c)
        near, log = await inbox(a, {"link": str(far)})
        await wait_for(lambda: near in c._processes[far].links, timeout=5)
        hostile = Hostile(nats_url)
        await hostile.start()
        try:
            await wait_up(a, "z")
            hostile.send(UNLINK, str(far), str(near))
            await trio.sleep(0.3)
            c.kill(far)
            with trio.fail_after(3):
                await wait_for(lambda: log, timeout=3)
            assert [e[:2] for e in log] == [("exit", "killed")]
        finally:
            await hostile.client.close()


# -- answers that do not fit ----------------------------------------------------------------------


class Big(Actor):
    """Answers any call with a reply of exactly ``max_message`` encoded bytes."""

    async def handle(self, ctx, msg):
        if msg.kind == Kind.CALL:
            return b"x" * ((1 << 20) - 5)
        return None


async def test_a_reply_too_large_for_the_wire_fails_the_remote_call_and_the_replier_serves_on(nats_url):  # noqa: F811
    """A reply within max_message but over the server's max_payload once framed cannot be
    sent: the caller on the other node is answered with an error at once (not left to its
    timeout), and the replier keeps serving, as with a reply too large locally."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        big = await b.spawn(Big)
        started = trio.current_time()
        with pytest.raises(Exception) as failed:
            await a.call(big, "give", timeout=4)
        assert not isinstance(failed.value, CallTimeout), "the caller was left to its timeout"
        assert trio.current_time() - started < 2
        assert b.is_alive(big)


# -- bounded tables -------------------------------------------------------------------------------


class Holder(Actor):
    """Never answers a call (its callers give up)."""

    async def handle(self, ctx, msg):
        from airssys_actors import NOREPLY

        return NOREPLY if msg.kind == Kind.CALL else None


async def test_calls_whose_callers_gave_up_do_not_pile_up_on_the_channel(nats_url):  # noqa: F811
    """A process that never answers, called across nodes in a loop with short timeouts:
    the caller's node must not keep every given-up ref for as long as the channel lives
    (the receiving node prunes its side, ``calls_in``; ``calls_out`` must be bounded too)."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        holder = await b.spawn(Holder)
        calls = 600
        with trio.fail_after(8):
            for _ in range(calls):
                with pytest.raises(CallTimeout):
                    await a.call(holder, "anyone?", timeout=0.002)
        assert len(a._calls) == 0
        assert len(a._remote.peers["b"].calls_out) < calls // 2, "every given-up call is still remembered"


# -- global names seen from their own node ---------------------------------------------------------


async def test_a_global_name_works_on_the_node_that_holds_it(nats_url):  # noqa: F811
    """``register_global`` says any node can send to, call, link or monitor the name:
    the node holding it is one of them."""
    async with Node("a", cluster=config(nats_url)) as a:
        echo, log = await inbox(a)
        await a.register_global("svc", echo)
        assert a.whereis_global("svc") == echo
        await a.send("svc", "hello")
        assert await a.call("svc", "count", timeout=2) == 1
        assert log[0][:2] == ("cast", "hello")


# -- one full mailbox on the other node ------------------------------------------------------------


async def test_a_kill_from_another_node_ends_a_stuck_process_whose_mailbox_is_full(nats_url):  # noqa: F811
    """The signals for a process whose mailbox is full wait behind its held messages. A
    kill (exit signal) must not: the stuck process is exactly the one to kill, and it
    will never make room for the held messages ahead of the kill."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        stuck = await b.spawn(Slow, mailbox_capacity=1)
        for message in ("busy", "queued", "held 1", "held 2"):
            await a.send(stuck, message)
        await wait_for(lambda: b._remote.peers["a"].held_count >= 2, timeout=5)
        a.kill(stuck)
        with trio.fail_after(3):
            await wait_for(lambda: not b.is_alive(stuck), timeout=3)
        assert b.exit_reason(stuck).kind == "killed"


async def test_one_stuck_process_does_not_stop_calls_to_the_other_processes_of_its_node(nats_url):  # noqa: F811
    """Credit is per node pair: messages held for one stuck process (full mailbox) use up
    the window, and then every send and call from ``a`` to ``b`` waits, even to a healthy
    process. Locally a full mailbox only stops senders to that process."""
    window = 16
    async with Node("a", cluster=config(nats_url, window=window, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url, window=window)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        stuck = await b.spawn(Slow, mailbox_capacity=1)
        healthy, _ = await inbox(b)

        async def flood() -> None:
            for i in range(4 * window):
                await a.send(stuck, i)  # waits once the window is used up

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await trio.sleep(0.5)
            assert stuck in a._remote.peers["b"].blocked  # the flood waits: its mailbox is full
            # A call to another process of b: answered, as it would be on one node.
            assert await a.call(healthy, "count", timeout=3) == 0
            nursery.cancel_scope.cancel()


# -- what a refused send leaves behind -------------------------------------------------------------


async def test_a_remote_spawn_refused_for_size_leaves_no_waiter_behind(nats_url):  # noqa: F811
    """spawn(node=...) whose frame is over max_payload is refused at once (MessageTooLarge)
    and must not leave its waiter in the node's pending calls, nor its ref on the channel."""
    from airssys_actors import MessageTooLarge

    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30), max_message=4 << 20) as a, \
            Node("b", cluster=config(nats_url)) as b:
        b.register_component(Component.load(COMPONENTS / "counter.wat"), "counter", capabilities=Capabilities())
        await wait_up(a, "b")
        for _ in range(3):
            with pytest.raises(MessageTooLarge):
                await a.spawn("counter", node="b", args=b"x" * (2 << 20))
        assert len(a._calls) == 0
        assert not a._remote.peers["b"].spawns_out
        assert await a.call(await a.spawn(Later, args=0), "still", timeout=2) == "real"


async def test_register_global_over_a_malformed_entry_is_name_taken(nats_url):  # noqa: F811
    """A name whose bucket entry is not ours to read (another writer's garbage) is taken:
    register_global says NameTaken, it does not raise a msgpack error."""
    from airssys_actors import NameTaken

    client = NatsTransport(config(nats_url), lambda items: None)
    await client.start([])
    try:
        await client.kv_bucket("AIR_default_NAMES", history=1)
        await client.kv_create("AIR_default_NAMES", "n." + b"svc".hex(), b"\xc1garbage")
        async with Node("a", cluster=config(nats_url)) as a:
            pid, _ = await inbox(a)
            with pytest.raises(NameTaken):
                await a.register_global("svc", pid)
            assert await a.call(pid, "count", timeout=2) == 0
    finally:
        await client.close()


async def test_a_well_behaved_peer_is_not_cut_off_for_signals_to_a_stuck_process(nats_url):  # noqa: F811
    """Signals are never held back for credit at the sender; at the receiver they wait
    behind the held messages of their target. Many processes linking to one stuck process
    (full mailbox) is ordinary traffic: it must not count as "sent past its credit window"
    and cost every link and monitor between the two nodes their channel."""
    window = 16
    async with Node("a", cluster=config(nats_url, window=window, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url, window=window)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        resets = b.subscribe({"channel_reset"})
        stuck = await b.spawn(Slow, mailbox_capacity=1)
        for i in range(window - 2):
            await a.send(stuck, i)  # within the window: held on b behind the full mailbox
        await wait_for(lambda: b._remote.peers["a"].held_count >= window - 4, timeout=5)
        for _ in range(3 * window):
            await inbox(a, {"link": str(stuck)})  # each sends a LINK: held behind the messages
        await trio.sleep(0.5)
        reasons = []
        while True:
            try:
                reasons.append(resets._queue.popleft().data["why"])
            except IndexError:
                break
        assert reasons == [], f"the channel was torn down: {reasons}"


async def test_a_spawn_sent_to_a_stopping_node_is_refused_at_once(nats_url):  # noqa: F811
    """A node that is stopping (its processes take a while) still answers: a SPAWN that
    reaches it then gets a failure back at once, not silence until the spawner's timeout."""
    from airssys_actors import NoConnection, SpawnFailed

    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a:
        stopping = trio.Event()
        async with trio.open_nursery() as nursery:

            async def node_b() -> None:
                async with Node("b", cluster=config(nats_url), shutdown_timeout=3) as b:
                    b.register_component(Component.load(COMPONENTS / "counter.wat"), "counter",
                                         capabilities=Capabilities())
                    await b.spawn(Lingering, args=2.0)
                    await wait_up(a, "b")
                    stopping.set()
                # leaving the block: b stops, its Lingering process holds it up for 2 s

            nursery.start_soon(node_b)
            await stopping.wait()
            await trio.sleep(0.2)  # b is in its _stop_all now, still heartbeating
            started = trio.current_time()
            with pytest.raises((SpawnFailed, NoConnection)):
                await a.spawn("counter", node="b", timeout=3)
            assert trio.current_time() - started < 1.0, "the spawn was left to its timeout"
