"""The trio-native data plane against a real nats-server: order and completeness,
messages split across reads, limits, auth, outages (killed and stopped servers),
permission violations, and nothing left open after cancellation."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time

import pytest
import trio

from airssys_actors._clusterconfig import ClusterConfig
from airssys_actors._dataplane import DataPlane
from airssys_actors._transport import ClusterUnreachable, MessageTooLarge, NotConnected
from airssys_cli.natsserver import NatsServer, free_port


class Inbox:
    """What a DataPlane delivered: messages and states in one ordered log."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.events: list[object] = []  # states, and the index reached at each
        self.reads = 0
        self._changed = trio.Event()

    def on_messages(self, batch: list[tuple[str, bytes]]) -> None:
        self.messages.extend(batch)
        self.reads += 1
        self._changed.set()

    def on_state(self, state: str) -> None:
        self.events.append((state, len(self.messages)))
        self._changed.set()

    @property
    def states(self) -> list[str]:
        return [state for state, _ in self.events]

    async def until(self, predicate, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                self._changed = trio.Event()
                await self._changed.wait()


def plane(url: str, subjects: list[str], inbox: Inbox | None = None, **config) -> DataPlane:
    inbox = inbox or Inbox()
    return DataPlane(ClusterConfig(servers=url, **config), subjects, inbox.on_messages, inbox.on_state)


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


async def test_100k_messages_arrive_in_order_none_lost(nats_url):
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        await nursery.start(plane(nats_url, ["o.>"], inbox).run)
        sender = plane(nats_url, [])
        await nursery.start(sender.run)
        for i in range(100_000):
            sender.publish("o.x", b"%d" % i)
            if i % 2000 == 1999:
                await trio.lowlevel.checkpoint()  # the writer drains; the buffer stays far below its bound
        await inbox.until(lambda: len(inbox.messages) >= 100_000, timeout=30)
        nursery.cancel_scope.cancel()
    assert [int(data) for _, data in inbox.messages] == list(range(100_000))
    assert {subject for subject, _ in inbox.messages} == {"o.x"}
    assert inbox.reads < 100_000 / 10  # many messages per read: one call per socket read


async def test_messages_split_across_reads_tiny_and_one_mebibyte(nats_url):
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        receiver = plane(nats_url, ["s.>"], inbox)
        await nursery.start(receiver.run)
        sender = plane(nats_url, [])
        await nursery.start(sender.run)
        big = sender.max_payload
        payloads = [b"", b"a", os.urandom(65535), os.urandom(big), b"bc", os.urandom(65537), os.urandom(big),
                    *(b"%d" % i for i in range(100)), os.urandom(200_000)]
        for i, data in enumerate(payloads):
            sender.publish(f"s.{i % 3}", data)
            if len(data) > 100_000:
                await trio.lowlevel.checkpoint()
        await inbox.until(lambda: len(inbox.messages) >= len(payloads), timeout=20)
        nursery.cancel_scope.cancel()
    assert [data for _, data in inbox.messages] == payloads
    assert [subject for subject, _ in inbox.messages] == [f"s.{i % 3}" for i in range(len(payloads))]


async def test_a_message_over_max_payload_is_refused_at_publish(nats_url):
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        dp = plane(nats_url, ["m.>"], inbox)
        await nursery.start(dp.run)
        assert dp.max_payload == 1 << 20  # nats-server's default, from its INFO
        with pytest.raises(MessageTooLarge, match="max_payload"):
            dp.publish("m.a", b"x" * (dp.max_payload + 1))
        dp.publish("m.a", b"after")
        await inbox.until(lambda: inbox.messages)
        nursery.cancel_scope.cancel()
    assert inbox.messages == [("m.a", b"after")]
    assert dp.connected is False


async def test_a_closed_port_is_cluster_unreachable_within_connect_timeout():
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as error:
        await plane(url, ["x"], connect_timeout=0.6).run()
    assert time.monotonic() - started < 0.6 + 1.5
    assert url in str(error.value) and "refused" in str(error.value).lower()


async def test_publish_before_run_is_not_connected():
    with pytest.raises(NotConnected, match="not running"):
        plane("nats://127.0.0.1:1", []).publish("a", b"x")


@pytest.fixture
def auth_server(tmp_path):
    servers: list[NatsServer] = []

    def start(config: str) -> NatsServer:
        conf = tmp_path / f"nats{len(servers)}.conf"
        conf.write_text(config)
        server = NatsServer().start(tmp_path / f"store{len(servers)}", config_file=conf)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


async def roundtrip(url: str, **config) -> list[tuple[str, bytes]]:
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        dp = plane(url, ["r.>"], inbox, **config)
        await nursery.start(dp.run)
        dp.publish("r.x", b"ok")
        await inbox.until(lambda: inbox.messages)
        nursery.cancel_scope.cancel()
    return inbox.messages


async def test_wrong_password_is_cluster_unreachable_quickly(auth_server):
    server = auth_server('authorization { users = [ {user: "a", password: "pw-a"} ] }\n')
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable) as error:
        await plane(server.url, ["x"], user="a", password="wrong", connect_timeout=5).run()
    assert time.monotonic() - started < 2.5  # the server's -ERR ends it, not the timeout
    assert "authorization violation" in str(error.value).lower()


async def test_token_user_password_and_url_userinfo_work(auth_server):
    users = auth_server('authorization { users = [ {user: "a", password: "pw-a"} ] }\n')
    assert await roundtrip(users.url, user="a", password="pw-a") == [("r.x", b"ok")]
    assert await roundtrip(f"nats://a:pw-a@127.0.0.1:{users.port}") == [("r.x", b"ok")]
    token = auth_server('authorization { token: "s3cret" }\n')
    assert await roundtrip(token.url, token="s3cret") == [("r.x", b"ok")]
    assert await roundtrip(f"nats://s3cret@127.0.0.1:{token.port}") == [("r.x", b"ok")]
    with pytest.raises(ClusterUnreachable, match="Authorization Violation"):
        await plane(token.url, ["r.>"], token="wrong", connect_timeout=2).run()


async def test_nkey_seed_signs_the_nonce(auth_server, tmp_path):
    nkeys = pytest.importorskip("nkeys")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed + b"\n")
    server = auth_server(f'authorization {{ users = [ {{nkey: "{public}"}} ] }}\n')
    assert await roundtrip(server.url, nkeys_seed=str(tmp_path / "user.nk")) == [("r.x", b"ok")]
    other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    (tmp_path / "other.nk").write_bytes(other)
    with pytest.raises(ClusterUnreachable, match="Authorization Violation"):
        await plane(server.url, ["r.>"], nkeys_seed=str(tmp_path / "other.nk"), connect_timeout=2).run()


async def test_a_killed_server_is_disconnected_then_reconnected_and_subscriptions_work_again(nats_server):
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        dp = plane(nats_server.url, ["k.>"], inbox, reconnect_wait=0.1)
        await nursery.start(dp.run)
        dp.publish("k.a", b"before")
        await inbox.until(lambda: inbox.messages)
        nats_server.kill()
        await inbox.until(lambda: "disconnected" in inbox.states, timeout=5)
        assert dp.connected is False
        with pytest.raises(NotConnected):
            dp.publish("k.a", b"during")
        await trio.to_thread.run_sync(nats_server.restart)
        await inbox.until(lambda: "reconnected" in inbox.states, timeout=10)
        assert dp.connected
        dp.publish("k.a", b"after")
        await inbox.until(lambda: len(inbox.messages) >= 2)
        nursery.cancel_scope.cancel()
    assert inbox.messages == [("k.a", b"before"), ("k.a", b"after")]
    assert inbox.states == ["disconnected", "reconnected"]


async def test_a_stopped_server_is_noticed_by_the_ping_deadline(nats_server):
    inbox = Inbox()
    config = ClusterConfig(servers=nats_server.url, reconnect_wait=0.1, connect_timeout=0.5)
    dp = DataPlane(config, ["p.>"], inbox.on_messages, inbox.on_state, ping_interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(dp.run)
        os.kill(nats_server.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            await inbox.until(lambda: "disconnected" in inbox.states, timeout=5)
            assert time.monotonic() - started < 0.5 * 2 + 2.0  # two ping intervals and slack for a loaded machine
        finally:
            os.kill(nats_server.pid, signal.SIGCONT)
        await inbox.until(lambda: "reconnected" in inbox.states, timeout=10)
        dp.publish("p.a", b"back")
        await inbox.until(lambda: inbox.messages)
        nursery.cancel_scope.cancel()
    assert inbox.messages == [("p.a", b"back")]


async def test_a_permissions_violation_is_logged_and_survived(auth_server, caplog):
    server = auth_server('authorization { users = [ {user: "a", password: "pw", '
                         'permissions: {publish: {allow: ["ok.>"]}, subscribe: {allow: ["ok.>"]}}} ] }\n')
    inbox = Inbox()
    caplog.set_level(logging.ERROR, logger="airssys_actors.cluster")
    async with trio.open_nursery() as nursery:
        dp = plane(server.url, ["ok.>"], inbox, user="a", password="pw")
        await nursery.start(dp.run)
        dp.publish("denied.x", b"no")
        dp.publish("ok.x", b"yes")
        await inbox.until(lambda: inbox.messages and dp.permission_violations)
        await trio.sleep(0.2)
        dp.publish("ok.y", b"still")
        await inbox.until(lambda: len(inbox.messages) >= 2)
        nursery.cancel_scope.cancel()
    assert inbox.messages == [("ok.x", b"yes"), ("ok.y", b"still")]
    assert inbox.states == []  # never disconnected
    assert any("Permissions Violation" in r.getMessage() and "denied.x" in r.getMessage() for r in caplog.records)


async def test_nothing_outlives_the_nursery(nats_url):
    before = socket_fds()
    with trio.move_on_after(10):
        async with trio.open_nursery() as nursery:
            dp = plane(nats_url, ["n.>"])
            await nursery.start(dp.run)
            assert socket_fds() > before
            nursery.cancel_scope.cancel()
    assert socket_fds() == before
    assert dp.connected is False
    with pytest.raises(NotConnected):
        dp.publish("n.a", b"x")


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_files(tmp_path):
    """A throwaway CA, a server cert for 127.0.0.1 and a client cert, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=airssys-test-ca",
             cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=tmp_path)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext", cwd=tmp_path)
    return tmp_path


async def test_tls_with_a_client_certificate(auth_server, tls_files):
    d = tls_files
    server = auth_server(f'tls {{ cert_file: "{d}/server.pem", key_file: "{d}/server.key", ca_file: "{d}/ca.pem", '
                         f'verify: true }}\n')
    files = dict(tls_ca=str(d / "ca.pem"), tls_cert=str(d / "client.pem"), tls_key=str(d / "client.key"))
    assert await roundtrip(server.url, **files) == [("r.x", b"ok")]  # upgraded: the INFO says tls_required
    assert await roundtrip(f"tls://127.0.0.1:{server.port}", **files) == [("r.x", b"ok")]
    # The system's CAs do not know this server: a clear error, within the timeout (the
    # first use of the system's CAs loads them: up to a second on a busy machine).
    with pytest.raises(ClusterUnreachable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await plane(server.url, ["r.>"], connect_timeout=5).run()
    # No client certificate: the server refuses the handshake.
    with pytest.raises(ClusterUnreachable):
        await plane(server.url, ["r.>"], tls_ca=str(d / "ca.pem"), connect_timeout=5).run()


async def test_servers_are_tried_in_turn_at_start_and_on_reconnect(nats_server, tmp_path):
    dead = f"nats://127.0.0.1:{free_port()}"
    second = NatsServer().start(tmp_path / "second")
    try:
        inbox = Inbox()
        config = ClusterConfig(servers=[dead, nats_server.url, second.url], reconnect_wait=0.05)
        dp = DataPlane(config, ["f.>"], inbox.on_messages, inbox.on_state)
        async with trio.open_nursery() as nursery:
            await nursery.start(dp.run)
            assert dp.server == nats_server.url  # past the dead one
            nats_server.kill()
            await inbox.until(lambda: "reconnected" in inbox.states, timeout=10)
            assert dp.server == second.url
            dp.publish("f.a", b"on the second")
            await inbox.until(lambda: inbox.messages)
            nursery.cancel_scope.cancel()
        assert inbox.messages == [("f.a", b"on the second")]
    finally:
        second.stop()
