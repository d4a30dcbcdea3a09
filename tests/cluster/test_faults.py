"""Faults at the edges of a cluster: the NATS server absent, killed and restarted; a
message too large for it."""

from __future__ import annotations

import threading

import pytest
import trio

from airssys_actors import Actor, CallFailed, MessageTooLarge, NameTaken, NoConnection, Node
from airssys_actors._transport import ClusterUnreachable
from airssys_cli.natsserver import free_port

from .nodes import config, wait_for, wait_up


class _Idle(Actor):
    pass


async def test_no_server_at_start_is_a_clear_error_not_a_hang():
    threads = threading.active_count()
    url = f"nats://127.0.0.1:{free_port()}"
    with trio.fail_after(15):
        with pytest.raises(ClusterUnreachable) as refused:
            async with Node("x", cluster=config(url, connect_timeout=1.0)):
                pass
    assert url.split("//")[1] in str(refused.value)
    await wait_for(lambda: threading.active_count() <= threads, timeout=5)


async def test_server_killed_and_restarted_nodes_reconnect_and_the_registry_survives(nats_server, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_server.url)) as t:
        await wait_up(t, "b")
        assert await t.call(b.pids["ctl"], ["register", "svc", b.pids["echo"]]) == "ok"
        await wait_for(lambda: t.whereis_global("svc") is not None)
        outcome: list[BaseException] = []

        async def pending_call():
            try:
                await t.call(b.pids["recorder"], "hold", timeout=30)
            except CallFailed as exc:
                outcome.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pending_call)
            await trio.sleep(0.2)
            nats_server.kill()
            await wait_for(lambda: outcome)
        assert outcome[0].reason.kind == "noconnection"
        # Sent during the outage: refused at the sender, not silently lost.
        with pytest.raises(NoConnection):
            await t.send(b.pids["echo"], "during the outage")
        nats_server.restart()
        await wait_up(t, "b", timeout=20)
        assert await t.call(b.pids["echo"], "after") == "after"
        # The names were on disk: still there, still held.
        assert str(t.whereis_global("svc")) == b.pids["echo"]
        assert await t.call("svc", "by name") == "by name"
        mine = await t.spawn(_Idle)
        with pytest.raises(NameTaken):
            await t.register_global("svc", mine)


async def test_a_message_over_the_servers_max_payload_is_refused_at_the_sender(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url), max_message=4 << 20) as t:
        await wait_up(t, "b")
        with pytest.raises(MessageTooLarge):
            await t.send(b.pids["echo"], b"x" * (2 << 20))
        with pytest.raises(MessageTooLarge):
            await t.call(b.pids["echo"], b"x" * (2 << 20))
        assert await t.call(b.pids["echo"], "still fine") == "still fine"

