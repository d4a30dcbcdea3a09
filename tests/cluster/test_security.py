"""Cluster credentials and subject permissions: with a user per node and permissions
that let node X publish process signals only as X (``air.<c>.p.*.X``), one node cannot
forge another's signals. The server config is the one docs/distribution.md shows."""

from __future__ import annotations

import msgpack
import pytest
import trio

from airssys_actors import Actor, Kind, Node
from airssys_actors._channel import MSG
from airssys_actors._transport import ClusterUnreachable, NatsTransport
from airssys_cli.natsserver import NatsServer

from .nodes import NodeProcess, config, wait_up


def permissions(node: str, cluster: str = "default") -> str:
    p = f"air.{cluster}"
    return (f'{{publish: {{allow: ["{p}.p.*.{node}", "{p}.hb.{node}", "{p}.ctl.*.ping", "_INBOX.>", '
            f'"$JS.API.>", "$KV.AIR_{cluster}_NAMES.>"]}}, '
            f'subscribe: {{allow: ["{p}.p.{node}.>", "{p}.hb.*", "{p}.ctl.{node}.>", "_INBOX.>"]}}}}')


def server_config(nodes: list[str]) -> str:
    users = ",\n    ".join(f'{{user: "{n}", password: "pw-{n}", permissions: {permissions(n)}}}' for n in nodes)
    return f"authorization {{\n  users = [\n    {users}\n  ]\n}}\n"


class Echo(Actor):
    async def handle(self, ctx, msg):
        return msg.value if msg.kind == Kind.CALL else None


@pytest.fixture
def secured_server(tmp_path):
    conf = tmp_path / "nats.conf"
    conf.write_text(server_config(["t", "b", "mallory"]))
    server = NatsServer().start(tmp_path / "nats", config_file=conf)
    try:
        yield server
    finally:
        server.stop()


async def test_nodes_with_credentials_work_and_cannot_forge_each_others_signals(secured_server, tmp_path):
    url = secured_server.url
    b = NodeProcess("b", url, tmp_path, user="b", password="pw-b").start()
    try:
        async with Node("t", cluster=config(url, user="t", password="pw-t")) as t:
            await wait_up(t, "b")
            assert await t.call(b.pids["echo"], "hello") == "hello"
            echo = await t.spawn(Echo)
            await t.register_global("t-echo", echo)
            drops = t.subscribe({"cluster_drop"})
            mallory = NatsTransport(config(url, user="mallory", password="pw-mallory"), lambda items: None)
            await mallory.start([])
            try:
                # As b (refused by the server: mallory may publish only as mallory) ...
                forged = msgpack.packb([b.node_id, 1, 1, MSG, str(echo), None, msgpack.packb("forged")])
                mallory.publish("air.default.p.t.b", forged)
                mallory.publish("air.default.hb.b", msgpack.packb([b.node_id, 99]))
                # ... and as itself, which does arrive (and is dropped: it is not b).
                mallory.publish("air.default.p.t.mallory", forged)
                with trio.fail_after(10):
                    event = await drops.get()
                assert event.data["subject"] == "air.default.p.t.mallory"
                await trio.sleep(0.3)
                assert drops.drain() == []
                assert t.process_info(echo)["messages_in"] == 0
                assert await t.call(b.pids["echo"], "still") == "still"
            finally:
                await mallory.close()
    finally:
        b.stop()


async def test_wrong_credentials_are_a_clear_error(secured_server):
    with trio.fail_after(15):
        with pytest.raises(ClusterUnreachable) as refused:
            async with Node("t", cluster=config(secured_server.url, user="t", password="wrong", connect_timeout=2)):
                pass
    assert "author" in str(refused.value).lower() or "refused" in str(refused.value).lower()


async def test_no_credentials_on_a_secured_server_is_a_clear_error(secured_server):
    with trio.fail_after(15), pytest.raises(ClusterUnreachable):
        async with Node("t", cluster=config(secured_server.url, connect_timeout=2)):
            pass
