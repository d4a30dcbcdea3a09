"""Hostile traffic on a cluster node's subjects: garbage, forged senders, made-up nodes,
a peer that ignores its credit, a malformed registry entry. Each is dropped (with a
``cluster_drop`` event) or ends only that peer's channel; the node keeps serving."""

from __future__ import annotations

import msgpack
import pytest
import trio

from airssys_actors import Actor, Kind, Node
from airssys_actors._channel import MAX_PEERS, MSG
from airssys_actors._transport import NatsTransport

from ..cluster.conftest import nats_server, nats_url  # noqa: F401 - fixtures
from ..cluster.nodes import config, wait_for


class Echo(Actor):
    async def handle(self, ctx, msg):
        return msg.value if msg.kind == Kind.CALL else None


class Slow(Actor):
    async def handle(self, ctx, msg):
        await trio.sleep(3600)


async def hostile_client(url: str) -> NatsTransport:
    client = NatsTransport(config(url), lambda items: None)
    await client.start([])
    return client


async def still_serves(node: Node) -> None:
    pid = await node.spawn(Echo)
    assert await node.call(pid, "ok?") == "ok?"


GARBAGE = [
    b"",
    b"\xc1",  # never valid msgpack
    msgpack.packb({"not": "a frame"}),
    msgpack.packb([1, 2, 3, 4]),  # header of the wrong types
    msgpack.packb(["z:1", 1, 1, 999]),  # unknown kind
    msgpack.packb(["z:1", 1, 1, MSG, "<t.1>"]),  # too few fields
    msgpack.packb(["z:1", 1, 1, MSG, 5, None, b"x"]),  # a target that is no address
    msgpack.packb(["z:1", 1, 2, MSG, "<t.1>", "not a pid", b"x"]),  # a bad sender
    msgpack.packb(["z:1", "1", 1, MSG, "<t.1>", None, b"x"]),  # epoch of the wrong type
    b"\x91" * 100_000,  # deeply nested arrays
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_frames_are_dropped_and_the_node_serves(nats_url, data):  # noqa: F811
    async with Node("t", cluster=config(nats_url)) as t:
        events = t.subscribe({"cluster_drop"})
        client = await hostile_client(nats_url)
        try:
            client.publish("air.default.p.t.z", data)
            client.publish("air.default.hb.z", data)
            client.publish("air.default.ctl.t.ping", data)  # no reply subject
            client.publish("air.default.ctl.t.no-such-op", data, reply="_INBOX.x")
            with trio.fail_after(10):
                event = await events.get()
            assert event.kind == "cluster_drop" and event.data["why"]
            await still_serves(t)
        finally:
            await client.close()


async def test_a_frame_whose_sender_is_not_its_subjects_is_dropped(nats_url):  # noqa: F811
    async with Node("t", cluster=config(nats_url)) as t:
        pid = await t.spawn(Echo)
        events = t.subscribe({"cluster_drop"})
        client = await hostile_client(nats_url)
        try:
            # Published as "b" but claiming to be "c": dropped, no node "c" appears.
            client.publish("air.default.p.t.b", msgpack.packb(["c:1", 1, 1, MSG, str(pid), None, b"\xa1x"]))
            with trio.fail_after(10):
                event = await events.get()
            assert "header" in event.data["why"]
            assert [n["name"] for n in t.cluster_nodes()] == ["t"]
            assert t.process_info(pid)["messages_in"] == 0
        finally:
            await client.close()


async def test_made_up_nodes_cannot_grow_the_peer_table(nats_url):  # noqa: F811
    async with Node("t", cluster=config(nats_url)) as t:
        client = await hostile_client(nats_url)
        try:
            for i in range(MAX_PEERS + 500):
                client.publish(f"air.default.hb.fake{i}", msgpack.packb([f"fake{i}:1", 1]))
            await wait_for(lambda: len(t.cluster_nodes()) >= MAX_PEERS, timeout=20)
            await trio.sleep(0.5)
            assert len(t.cluster_nodes()) <= MAX_PEERS + 1
            await still_serves(t)
        finally:
            await client.close()


async def test_a_peer_that_ignores_xoff_gets_its_excess_refused_not_kept(nats_url):  # noqa: F811
    window = 32
    async with Node("t", cluster=config(nats_url, window=window, heartbeat=0.5, suspect_after=20, down_after=30)) as t:
        slow = await t.spawn(Slow, mailbox_capacity=1)
        client = await hostile_client(nats_url)
        sent = 10 * window
        try:
            client.publish("air.default.hb.z", msgpack.packb(["z:1", 1]))
            for seq in range(1, sent + 1):
                client.publish("air.default.p.t.z", msgpack.packb(["z:1", 1, seq, MSG, str(slow), None, b"\xa1x"]))
            # What a sender that heeds XOFF could have in flight is held; the rest is
            # refused as dead letters (mailbox_full), not kept: memory stays bounded.
            await wait_for(lambda: sum(d.reason == "mailbox_full" for d in t.dead_letters()) > 0, timeout=10)
            await trio.sleep(0.5)
            await still_serves(t)
            peer = t._remote.peers["z"]
            assert peer.held_count <= 2 * window
            # Every message it sent is accounted for: the one Slow is handling (for ever),
            # the one in its mailbox, those held, and dead letters.
            info = t.process_info(slow)
            assert info["messages_in"] == 0 and info["mailbox"] == 1
            assert 1 + 1 + peer.held_count + t.dead_letter_count == sent
        finally:
            await client.close()


async def test_a_malformed_registry_entry_is_ignored(nats_url):  # noqa: F811
    async with Node("t", cluster=config(nats_url)) as t:
        events = t.subscribe({"cluster_drop"})
        client = await hostile_client(nats_url)
        try:
            await client.kv_bucket("AIR_default_NAMES")
            await client.kv_create("AIR_default_NAMES", "n." + b"svc".hex(), b"\xc1garbage")
            await client.kv_create("AIR_default_NAMES", "n.zz-not-hex", msgpack.packb(["x", "<a.1>"]))
            with trio.fail_after(10):
                await events.get()
            assert t.whereis_global("svc") is None
            await still_serves(t)
        finally:
            await client.close()
