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

from airssys_actors import Actor, CallFailed, CallTimeout, Kind, NoConnection, Node, Pid
from airssys_actors._remote import EXIT, SPAWNED
from airssys_actors._transport import NatsTransport

from ..cluster.conftest import nats_server, nats_url, node_processes  # noqa: F401 - fixtures
from ..cluster.nodes import config, wait_for, wait_up


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
        if msg.kind == Kind.CALL:
            where, component, options = msg.value
            return str(await ctx.node.spawn(component, node=where, **options))
        self.log.append((msg.kind.name.lower(), msg.value, None if msg.sender is None else str(msg.sender)))
        return None


async def raw_client(url: str, on_batch=lambda items: None) -> NatsTransport:
    client = NatsTransport(config(url), on_batch)
    return client


# -- channels ------------------------------------------------------------------------------


async def test_a_one_way_channel_reset_by_the_receiver_tears_down_the_sender_too(nats_url):  # noqa: F811
    """Only ``a`` ever sent sequenced frames toward ``b`` (``b`` answered only with credit).
    ``b`` declares ``a`` down (``a`` stalled past b's ``down_after``) and resets. ``a`` must
    tear its side down too: its link fires with noconnection and its later messages are
    not dead letters of a dead epoch forever (nor its sender blocked for want of credit)."""
    async with Node("a", cluster=config(nats_url, suspect_after=20, down_after=30)) as a, \
            Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        q, q_log = await inbox(b)
        p, p_log = await inbox(a, {"link": str(q)})
        await wait_for(lambda: p in b._processes[q].links, timeout=5)
        time.sleep(1.0)  # this thread stalls: b (down_after 0.5) declares a down, a does not
        with trio.fail_after(8):
            await wait_for(lambda: q_log, timeout=8)
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
        assert b.dead_letter_count == 0


async def test_held_messages_for_a_process_that_dies_are_dead_letters_and_held_calls_fail(nats_url):  # noqa: F811
    """Signals held for a full mailbox whose process then dies: every held message is a
    dead letter and every held call fails at once with noproc, none vanishes."""
    async with Node("a", cluster=config(nats_url)) as a, Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        slow = await b.spawn(Slow, mailbox_capacity=1)
        await a.send(slow, "busy")  # being handled
        await a.send(slow, "queued")  # fills the mailbox
        for i in range(5):
            await a.send(slow, ["held", i])  # held on b for want of room
        await wait_for(lambda: b._remote.peers["a"].held_count >= 5, timeout=5)
        before = b.dead_letter_count

        outcome: list[object] = []

        async def held_call() -> None:
            try:
                outcome.append(await a.call(slow, "held call", timeout=6))
            except (CallFailed, CallTimeout) as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(held_call)
            await wait_for(lambda: b._remote.peers["a"].held_count >= 6, timeout=5)
            b.kill(slow)
        assert len(outcome) == 1
        assert isinstance(outcome[0], CallFailed), f"the held call was not answered: {outcome[0]!r}"
        assert outcome[0].reason.kind == "noproc"
        # "queued" (in the mailbox) + 5 held casts + the held call: all dead letters.
        await wait_for(lambda: b.dead_letter_count - before >= 7, timeout=3)
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
    global names: their processes are alive and keep their names."""
    async with Node("a", cluster=config(nats_url)) as a, Node("b", cluster=config(nats_url)) as b:
        await wait_up(a, "b")
        await wait_up(b, "a")
        pa, _ = await inbox(a)
        pb, _ = await inbox(b)
        await a.register_global("svc-a", pa)
        await b.register_global("svc-b", pb)
        await wait_for(lambda: a.whereis_global("svc-b") == pb and b.whereis_global("svc-a") == pa, timeout=5)
        time.sleep(1.0)  # both loops stall past down_after; every process stays alive
        await wait_up(a, "b", timeout=5)
        await wait_up(b, "a", timeout=5)
        await trio.sleep(1.0)  # any delete in flight lands
        assert a.is_alive(pa) and b.is_alive(pb)
        assert a.whereis_global("svc-b") == pb, "a deleted b's name though b never went down"
        assert b.whereis_global("svc-a") == pa, "b deleted a's name though a never went down"
