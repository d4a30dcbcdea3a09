"""NatsTransport against a real nats-server: ordering, batching, requests, outages, KV,
and a clean shutdown."""

from __future__ import annotations

import threading
import time

import pytest
import trio

from airssys_actors._clusterconfig import ClusterConfig
from airssys_actors._transport import (
    ClusterUnreachable,
    Inbound,
    KeyExists,
    KvChange,
    NatsTransport,
    NoResponders,
    NotConnected,
    PublishFailed,
    RequestTimedOut,
    StateChange,
    WrongRevision,
)
from airssys_cli.natsserver import free_port


class Recorder:
    """An on_batch that keeps everything and counts its calls."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.calls = 0
        self.closed = False
        self.after_close = 0

    def __call__(self, batch: list[object]) -> None:
        assert batch, "on_batch is never called with nothing"
        self.calls += 1
        if self.closed:
            self.after_close += 1
        self.items.extend(batch)

    def of(self, kind: type) -> list:
        return [item for item in self.items if isinstance(item, kind)]

    async def until(self, predicate, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.005)


def config(url: str, **overrides) -> ClusterConfig:
    return ClusterConfig(servers=url, **{"connect_timeout": 2.0, "reconnect_wait": 0.1, "request_timeout": 2.0,
                                         **overrides})


@pytest.fixture
async def transport(nats_url):
    recorder = Recorder()
    transport = NatsTransport(config(nats_url), recorder)
    with trio.fail_after(5):
        await transport.start(["t.>"])
    transport.recorder = recorder
    try:
        yield transport
    finally:
        await transport.close()


async def test_ten_thousand_messages_arrive_all_in_order_in_few_batches(transport):
    received = transport.recorder
    with trio.fail_after(20):
        for i in range(10_000):
            transport.publish("t.order", b"%d" % i)
        await received.until(lambda: len(received.of(Inbound)) >= 10_000)
    await trio.sleep(0.05)
    messages = received.of(Inbound)
    assert [int(m.data) for m in messages] == list(range(10_000))
    assert {m.subject for m in messages} == {"t.order"}
    assert all(m.reply is None for m in messages)
    # Batched: one on_batch per burst, not one per message.
    assert received.calls < 1_000, received.calls


async def test_publish_from_on_batch_and_reply_subject_kept(nats_url, transport):
    echoed = Recorder()
    responder: NatsTransport

    def on_batch(batch):
        echoed(batch)
        for item in batch:
            if isinstance(item, Inbound) and item.reply:
                responder.publish(item.reply, b"echo:" + item.data)

    responder = NatsTransport(config(nats_url), on_batch)
    with trio.fail_after(10):
        await responder.start(["svc.>"])
        try:
            assert await transport.request("svc.echo", b"hello", timeout=2.0) == b"echo:hello"
            # 50 concurrent callers, each gets its own answer.
            answers: dict[int, bytes] = {}

            async def caller(i: int) -> None:
                answers[i] = await transport.request("svc.echo", b"%d" % i, timeout=5.0)

            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(caller, i)
            assert answers == {i: b"echo:%d" % i for i in range(50)}
        finally:
            await responder.close()


async def test_request_nobody_subscribed_is_no_responders(transport):
    with trio.fail_after(5), pytest.raises(NoResponders):
        await transport.request("nobody.here", b"x", timeout=2.0)


async def test_request_to_a_silent_subscriber_times_out(nats_url, transport):
    silent = NatsTransport(config(nats_url), Recorder())
    with trio.fail_after(10):
        await silent.start(["quiet.>"])
        try:
            started = time.monotonic()
            with pytest.raises(RequestTimedOut):
                await transport.request("quiet.x", b"x", timeout=0.3)
            assert 0.25 < time.monotonic() - started < 2.0
        finally:
            await silent.close()


async def test_cancelling_a_request_leaves_the_transport_working(nats_url, transport):
    silent = NatsTransport(config(nats_url), Recorder())
    with trio.fail_after(10):
        await silent.start(["quiet.>"])
        try:
            with trio.move_on_after(0.1) as scope:
                await transport.request("quiet.x", b"x", timeout=5.0)
            assert scope.cancelled_caught
            with pytest.raises(NoResponders):
                await transport.request("nobody.here", b"x", timeout=2.0)
        finally:
            await silent.close()


async def test_unreachable_server_fails_within_connect_timeout():
    url = f"nats://127.0.0.1:{free_port()}"
    transport = NatsTransport(config(url, connect_timeout=0.5), Recorder())
    started = time.monotonic()
    with trio.fail_after(5), pytest.raises(ClusterUnreachable, match=r"127\.0\.0\.1") as caught:
        await transport.start(["t.>"])
    assert time.monotonic() - started < 0.5 + 1.0  # connect_timeout and some slack
    assert "0.5 s" in str(caught.value)
    await transport.close()
    with pytest.raises(NotConnected):
        transport.publish("t.x", b"")


async def test_server_kill_and_restart_gives_state_changes_and_fast_publish_failures(nats_server, transport):
    received = transport.recorder
    with trio.fail_after(20):
        transport.publish("t.before", b"1")
        await received.until(lambda: received.of(Inbound))
        nats_server.kill()
        await received.until(lambda: StateChange("disconnected") in received.items)
        assert not transport.connected
        # During the outage a publish is refused, not buffered for later.
        for i in range(5):
            transport.publish("t.during", b"%d" % i)
        await received.until(lambda: len(received.of(PublishFailed)) >= 5)
        assert [f.data for f in received.of(PublishFailed)] == [b"%d" % i for i in range(5)]
        assert {f.reason for f in received.of(PublishFailed)} == {"disconnected"}
        with pytest.raises(NotConnected):
            await transport.request("t.x", b"", timeout=1.0)

        nats_server.restart()
        await received.until(lambda: StateChange("reconnected") in received.items)
        assert transport.connected
        transport.publish("t.after", b"2")
        await received.until(lambda: any(m.subject == "t.after" for m in received.of(Inbound)))
    subjects = [m.subject for m in received.of(Inbound)]
    assert "t.during" not in subjects  # never replayed after the reconnect
    states = [i.state for i in received.items if isinstance(i, StateChange)]
    assert states == ["disconnected", "reconnected"]
    order = [type(i).__name__ + (i.subject if isinstance(i, Inbound) else "") for i in received.items]
    assert order.index("Inboundt.before") < order.index("StateChange") < order.index("Inboundt.after")


async def test_kv_create_update_delete_get(transport):
    with trio.fail_after(10):
        await transport.kv_bucket("T_NAMES")
        await transport.kv_bucket("T_NAMES")  # binding again is fine
        assert await transport.kv_get("T_NAMES", "name.a") is None
        first = await transport.kv_create("T_NAMES", "name.a", b"one")
        with pytest.raises(KeyExists):
            await transport.kv_create("T_NAMES", "name.a", b"two")
        assert await transport.kv_get("T_NAMES", "name.a") == (b"one", first)
        second = await transport.kv_update("T_NAMES", "name.a", b"two", last=first)
        assert second > first
        with pytest.raises(WrongRevision):
            await transport.kv_update("T_NAMES", "name.a", b"stale", last=first)
        with pytest.raises(WrongRevision):
            await transport.kv_delete("T_NAMES", "name.a", last=first)
        assert await transport.kv_get("T_NAMES", "name.a") == (b"two", second)
        await transport.kv_delete("T_NAMES", "name.a", last=second)
        assert await transport.kv_get("T_NAMES", "name.a") is None
        await transport.kv_delete("T_NAMES", "name.absent")  # deleting an absent key is fine
        again = await transport.kv_create("T_NAMES", "name.a", b"three")  # over the tombstone
        assert await transport.kv_get("T_NAMES", "name.a") == (b"three", again)


async def test_kv_watch_gives_current_values_then_changes(transport):
    received = transport.recorder
    with trio.fail_after(10):
        await transport.kv_bucket("T_WATCH")
        one = await transport.kv_create("T_WATCH", "name.one", b"1")
        two = await transport.kv_create("T_WATCH", "name.two", b"2")
        await transport.kv_update("T_WATCH", "name.one", b"1b", last=one)
        await transport.kv_create("T_WATCH", "other.x", b"x")
        await transport.kv_watch("T_WATCH", "name.>")
        # When kv_watch returns, every current value has been handed over.
        current = received.of(KvChange)
        assert {(c.key, c.value) for c in current} == {("name.one", b"1b"), ("name.two", b"2")}
        await transport.kv_delete("T_WATCH", "name.two", last=two)
        three = await transport.kv_create("T_WATCH", "name.three", b"3")
        await received.until(lambda: len(received.of(KvChange)) >= 4)
    changes = received.of(KvChange)[2:]
    assert changes[0].key == "name.two" and changes[0].deleted and changes[0].value is None
    assert changes[1] == KvChange("T_WATCH", "name.three", b"3", three, False)


async def test_kv_ttl_expiry_is_seen_as_deleted_and_the_key_can_be_claimed_again(transport):
    received = transport.recorder
    with trio.fail_after(15):
        await transport.kv_bucket("T_LEASES", ttl=1.0)
        await transport.kv_create("T_LEASES", "node.a", b"lease")
        await transport.kv_watch("T_LEASES")
        await received.until(lambda: any(c.deleted for c in received.of(KvChange)), timeout=10)
        assert await transport.kv_get("T_LEASES", "node.a") is None
        # The expiry marker does not block a new holder.
        rev = await transport.kv_create("T_LEASES", "node.a", b"new")
        assert await transport.kv_get("T_LEASES", "node.a") == (b"new", rev)


async def test_kv_survives_a_server_kill_and_restart_and_the_watch_resumes(nats_server, transport):
    received = transport.recorder
    with trio.fail_after(30):
        await transport.kv_bucket("T_DURABLE")
        rev = await transport.kv_create("T_DURABLE", "name.kept", b"kept")
        await transport.kv_watch("T_DURABLE")
        nats_server.kill()
        await received.until(lambda: StateChange("disconnected") in received.items)
        nats_server.restart()
        await received.until(lambda: StateChange("reconnected") in received.items)
        # JetStream may need a moment after a restart: the first call can time out.
        for _ in range(20):
            try:
                assert await transport.kv_get("T_DURABLE", "name.kept") == (b"kept", rev)
                break
            except RequestTimedOut:
                await trio.sleep(0.2)
        else:
            pytest.fail("JetStream did not come back within 20 tries")
        later = await transport.kv_create("T_DURABLE", "name.later", b"later")
        await received.until(lambda: any(c.key == "name.later" for c in received.of(KvChange)))
    changes = received.of(KvChange)
    # The watch restarted after the reconnect without handing over the old value twice.
    assert [(c.key, c.revision) for c in changes] == [("name.kept", rev), ("name.later", later)]


async def test_close_joins_the_thread_and_no_on_batch_after(nats_url):
    before = threading.active_count()
    recorder = Recorder()
    transport = NatsTransport(config(nats_url), recorder)
    with trio.fail_after(5):
        await transport.start(["t.>"])
    assert threading.active_count() == before + 1
    for i in range(2_000):
        transport.publish("t.x", b"%d" % i)
    started = time.monotonic()
    await transport.close()
    recorder.closed = True
    assert time.monotonic() - started < 2.5
    assert threading.active_count() == before
    await transport.close()  # idempotent
    await trio.sleep(0.2)
    assert recorder.after_close == 0
    with pytest.raises(NotConnected):
        transport.publish("t.x", b"")
    with pytest.raises(NotConnected):
        await transport.request("t.x", b"", timeout=1.0)


async def test_close_during_a_request_fails_the_request(nats_url, transport):
    silent = NatsTransport(config(nats_url), Recorder())
    with trio.fail_after(10):
        await silent.start(["quiet.>"])
        try:
            async with trio.open_nursery() as nursery:
                failed = []

                async def ask():
                    try:
                        await transport.request("quiet.x", b"", timeout=5.0)
                    except NotConnected:
                        failed.append(True)

                nursery.start_soon(ask)
                await trio.sleep(0.1)
                await transport.close()
            assert failed == [True]
        finally:
            await silent.close()


@pytest.mark.parametrize("after", [0.0, 0.001, 0.01, 0.2])
async def test_cancelling_start_stops_the_thread_at_once(after):
    before = threading.active_count()
    url = f"nats://127.0.0.1:{free_port()}"
    transport = NatsTransport(config(url, connect_timeout=5.0), Recorder())
    started = time.monotonic()
    with trio.move_on_after(after) as scope:
        await transport.start(["t.>"])
    assert scope.cancelled_caught
    assert time.monotonic() - started < after + 2.0  # the close bound, not the whole connect_timeout
    assert threading.active_count() == before
    await transport.close()
