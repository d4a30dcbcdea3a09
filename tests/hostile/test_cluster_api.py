"""Bad arguments to the cluster API (Node(cluster=...), spawn(node=...), the global
names, wait_for_node) are refused with an error that names the argument; the node
keeps serving."""

from __future__ import annotations

import math

import pytest

from airssys_actors import Actor, ActorError, Kind, Limits, Node, NoConnection, Pid
from airssys_actors._checks import InvalidType, InvalidValue

from ..cluster.conftest import nats_server, nats_url  # noqa: F401 - fixtures
from ..cluster.nodes import config


class Echo(Actor):
    async def handle(self, ctx, msg):
        return msg.value if msg.kind == Kind.CALL else None


@pytest.mark.parametrize(("name", "cluster", "field"), [
    ("a.b", "nats://127.0.0.1:1", "name"),
    ("a b", "nats://127.0.0.1:1", "name"),
    ("", "nats://127.0.0.1:1", "name"),
    ("x" * 65, "nats://127.0.0.1:1", "name"),
    ("a", 123, "servers"),
    ("a", "ftp://127.0.0.1:1", "servers"),
    ("a", [], "servers"),
])
def test_a_bad_cluster_node_is_refused_naming_the_field(name, cluster, field):
    with pytest.raises((InvalidType, InvalidValue)) as refused:
        Node(name, cluster=cluster)
    assert refused.value.name == field


async def test_the_cluster_api_on_a_single_node_says_it_is_not_in_a_cluster():
    async with Node() as node:
        pid = await node.spawn(Echo)
        for attempt in (lambda: node.whereis_global("x"), lambda: node.global_names()):
            with pytest.raises(ActorError, match="not in a cluster"):
                attempt()
        for coro in (node.register_global("x", pid), node.unregister_global("x"), node.wait_for_node("b"),
                     node.spawn("counter", node="b")):
            with pytest.raises(ActorError, match="not in a cluster"):
                await coro
        assert node.cluster_nodes() == []
        assert await node.call(pid, "still") == "still"


async def test_bad_cluster_arguments_name_the_argument(nats_url):  # noqa: F811
    async with Node("t", cluster=config(nats_url)) as t:
        pid = await t.spawn(Echo)
        with pytest.raises(InvalidType, match="component"):
            await t.spawn(Echo, node="b")
        with pytest.raises(ActorError, match="remote node's to set"):
            await t.spawn("counter", node="b", limits=Limits())
        with pytest.raises(InvalidValue, match="timeout"):
            await t.spawn("counter", node="b", timeout=math.nan)
        with pytest.raises(InvalidType, match="name"):
            await t.spawn("counter", node="b", name=5)
        with pytest.raises(NoConnection):
            await t.spawn("counter", node="nowhere")
        with pytest.raises(InvalidType, match="pid"):
            await t.register_global("x", "not a pid")
        for bad in ("", "<looks-like-a-pid", "x" * 256, 7):
            with pytest.raises(ValueError, match="invalid name"):
                await t.register_global(bad, pid)
        with pytest.raises(InvalidType, match="name"):
            await t.wait_for_node(5)
        with pytest.raises(InvalidValue, match="timeout"):
            await t.wait_for_node("b", timeout=-1)
        with pytest.raises(NoConnection):
            await t.wait_for_node("nobody", timeout=0.2)
        assert t.whereis_global("never registered") is None
        await t.unregister_global("never registered")  # a no-op
        # A pid of a node never heard of: refused at the sender, not silently dropped.
        with pytest.raises(NoConnection):
            await t.send(Pid("elsewhere:1", 1), "hello")
        assert await t.call(pid, "still") == "still"
