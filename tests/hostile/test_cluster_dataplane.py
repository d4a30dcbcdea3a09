"""A hostile NATS server against the data plane: garbage, bad INFO, lying lengths,
endless lines, -ERR floods. The client reports a clear error or reconnects; it never
crashes its nursery with an unexpected exception type and never grows without bound."""

from __future__ import annotations

import base64
import functools
import json
import logging

import pytest
import trio

from airssys_actors._clusterconfig import ClusterConfig
from airssys_actors._dataplane import MAX_LINE, DataPlane, OutboundFull
from airssys_actors._transport import ClusterUnreachable, TransportError

INFO = {"server_id": "fake", "version": "2.11.0", "proto": 1, "max_payload": 1 << 20}


def info_line(**changes) -> bytes:
    return b"INFO " + json.dumps({**INFO, **changes}).encode() + b"\r\n"


async def handshake(stream: trio.abc.Stream, info: bytes | None = None) -> None:
    """Send INFO, read the client's CONNECT/SUB/PING, answer PONG."""
    await stream.send_all(info or info_line())
    seen = b""
    while b"PING\r\n" not in seen:
        data = await stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("client left")
        seen += data
    await stream.send_all(b"PONG\r\n")


class FakeServer:
    """Runs ``script(stream, n)`` for the n-th connection (0-based)."""

    def __init__(self, script) -> None:
        self.script = script
        self.connections = 0
        self.broken = 0
        self.url = ""

    async def handler(self, stream: trio.SocketStream) -> None:
        index = self.connections
        self.connections += 1
        try:
            await self.script(stream, index)
            await trio.sleep_forever()
        except trio.BrokenResourceError:
            self.broken += 1  # the client hung up on us

    async def start(self, nursery: trio.Nursery) -> FakeServer:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self.handler, 0, host="127.0.0.1"))
        self.url = f"nats://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        return self


class Inbox:
    def __init__(self) -> None:
        self.log: list[object] = []
        self._changed = trio.Event()

    def on_messages(self, batch) -> None:
        self.log.extend(batch)
        self._changed.set()

    def on_state(self, state: str) -> None:
        self.log.append(state)
        self._changed.set()

    async def until(self, predicate, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                self._changed = trio.Event()
                await self._changed.wait()


def plane(url: str, inbox: Inbox, **config) -> DataPlane:
    config.setdefault("reconnect_wait", 0.05)
    config.setdefault("connect_timeout", 1.0)
    return DataPlane(ClusterConfig(servers=url, **config), ["a.>"], inbox.on_messages, inbox.on_state)


def well_behaved_after(first):
    """A script: the first connection runs ``first``; later ones say one MSG and idle."""

    async def script(stream, index):
        await handshake(stream)
        if index == 0:
            await trio.sleep(0.1)  # after the client counts itself connected
            await first(stream)
        else:
            await stream.send_all(b"MSG a.ok 1 2\r\nok\r\n")

    return script


async def reconnects_after(first) -> list[object]:
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        server = await FakeServer(well_behaved_after(first)).start(nursery)
        await nursery.start(plane(server.url, inbox).run)
        await inbox.until(lambda: ("a.ok", b"ok") in inbox.log)
        nursery.cancel_scope.cancel()
    return inbox.log


async def test_garbage_after_connect_is_a_reconnect():
    async def garbage(stream):
        await stream.send_all(b"\x00\xff HELLO WORLD\r\n")

    assert await reconnects_after(garbage) == ["disconnected", "reconnected", ("a.ok", b"ok")]


async def test_a_msg_with_a_lying_length_is_a_reconnect_and_earlier_messages_are_kept():
    async def lying(stream):
        await stream.send_all(b"MSG a.x 1 2\r\nhi\r\nMSG a.x 1 3\r\nabcdef\r\n")

    assert await reconnects_after(lying) == [("a.x", b"hi"), "disconnected", "reconnected", ("a.ok", b"ok")]


async def test_a_msg_over_max_payload_is_refused_without_waiting_for_its_bytes():
    async def huge(stream):
        await stream.send_all(b"MSG a.x 1 999999999\r\n")

    assert await reconnects_after(huge) == ["disconnected", "reconnected", ("a.ok", b"ok")]


async def test_an_hmsg_is_skipped_and_what_follows_delivered():
    async def hmsg(stream):
        await stream.send_all(b"HMSG a.h 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG a.x 1 1\r\nz\r\n")
        await stream.send_all(b"HMSG a.h 1 12 99999999\r\n")  # over max_payload: a reconnect

    assert await reconnects_after(hmsg) == [("a.x", b"z"), "disconnected", "reconnected", ("a.ok", b"ok")]


@pytest.mark.parametrize("line", [b"MSG a.x 1 -5\r\n", b"MSG a.x 1 " + b"9" * 5000 + b"\r\n", b"MSG a.x 1 x\r\n",
                                  b"MSG a.x 5\r\n", b"MSG  a.x 1 5\r\n"])
async def test_bad_msg_lengths_are_reconnects(line):
    async def bad(stream):
        await stream.send_all(line)

    assert await reconnects_after(bad) == ["disconnected", "reconnected", ("a.ok", b"ok")]


async def test_bad_utf8_subject_and_malformed_msg_lines_are_reconnects():
    async def bad_subject(stream):
        await stream.send_all(b"MSG a.\xff 1 1\r\nx\r\n")

    async def malformed(stream):
        await stream.send_all(b"MSG onlysubject\r\n")

    assert await reconnects_after(bad_subject) == ["disconnected", "reconnected", ("a.ok", b"ok")]
    assert await reconnects_after(malformed) == ["disconnected", "reconnected", ("a.ok", b"ok")]


async def test_a_line_without_crlf_is_bounded_then_a_reconnect(caplog):
    sent = [0]

    async def endless(stream):
        chunk = b"A" * 65536
        for _ in range(1024):  # 64 MiB if nobody stops us
            await stream.send_all(chunk)
            sent[0] += len(chunk)

    caplog.set_level(logging.WARNING, logger="airssys_actors.cluster")
    log = await reconnects_after(endless)
    assert log == ["disconnected", "reconnected", ("a.ok", b"ok")]
    assert sent[0] < 16 << 20  # the client hung up long before 64 MiB (kernel buffers hold the rest)
    assert any(f"over {MAX_LINE} bytes without CRLF" in r.getMessage() for r in caplog.records)


async def test_an_async_info_with_a_huge_max_payload_is_a_reconnect():
    async def info(stream):
        await stream.send_all(info_line(max_payload=1 << 40))

    assert await reconnects_after(info) == ["disconnected", "reconnected", ("a.ok", b"ok")]


@pytest.mark.parametrize("info, expected", [
    (info_line(max_payload=1 << 40), "max_payload must be 1 to"),
    (info_line(max_payload="big"), "max_payload must be 1 to"),
    (b"INFO {not json\r\n", "INFO is not JSON"),
    (b"INFO [1, 2]\r\n", "not a JSON object"),
    (b"HELLO\r\n", "did not start with INFO"),
    (b"INFO " + b"x" * (MAX_LINE + 10), f"over {MAX_LINE} bytes without CRLF"),
])
async def test_a_bad_first_info_is_cluster_unreachable_naming_it(info, expected):
    async def script(stream, index):
        await stream.send_all(info)

    async with trio.open_nursery() as nursery:
        server = await FakeServer(script).start(nursery)
        with pytest.raises(ClusterUnreachable) as error:
            await plane(server.url, Inbox(), connect_timeout=0.5).run()
        nursery.cancel_scope.cancel()
    assert expected in str(error.value) and server.url in str(error.value)


async def test_a_server_that_never_answers_pong_is_cluster_unreachable_in_time():
    async def silent(stream, index):
        await stream.send_all(info_line())

    async with trio.open_nursery() as nursery:
        server = await FakeServer(silent).start(nursery)
        with trio.fail_after(3), pytest.raises(ClusterUnreachable, match=r"no answer within 0\.5 s"):
            await plane(server.url, Inbox(), connect_timeout=0.5).run()
        nursery.cancel_scope.cancel()


async def test_a_permissions_violation_flood_keeps_the_connection_and_the_log_bounded(caplog):
    async def flood(stream, index):
        await handshake(stream)
        await stream.send_all(b"-ERR 'Permissions Violation for Publish to \"a.x\"'\r\n" * 20_000)
        await stream.send_all(b"MSG a.after 1 5\r\nstill\r\n")

    caplog.set_level(logging.ERROR, logger="airssys_actors.cluster")
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        server = await FakeServer(flood).start(nursery)
        dp = plane(server.url, inbox)
        await nursery.start(dp.run)
        await inbox.until(lambda: ("a.after", b"still") in inbox.log)
        nursery.cancel_scope.cancel()
    assert inbox.log == [("a.after", b"still")]  # never disconnected
    assert server.connections == 1
    assert dp.permission_violations == 20_000
    assert 1 <= len([r for r in caplog.records if "Permissions Violation" in r.getMessage()]) <= 5


async def test_any_other_err_is_a_reconnect_and_an_err_flood_does_not_crash():
    async def other(stream):
        await stream.send_all(b"-ERR 'Unknown Protocol Operation'\r\n" * 10_000)

    assert await reconnects_after(other) == ["disconnected", "reconnected", ("a.ok", b"ok")]


async def test_an_err_at_handshake_on_every_server_fails_fast():
    async def refuse(stream, index):
        await stream.send_all(info_line())
        await stream.receive_some(65536)
        await stream.send_all(b"-ERR 'Authorization Violation'\r\n")

    async with trio.open_nursery() as nursery:
        server = await FakeServer(refuse).start(nursery)
        with trio.fail_after(2), pytest.raises(ClusterUnreachable, match="Authorization Violation"):
            await plane(server.url, Inbox(), connect_timeout=5).run()
        nursery.cancel_scope.cancel()


async def test_a_ping_flood_is_answered_and_the_connection_kept():
    async def pings(stream, index):
        await handshake(stream)
        await stream.send_all(b"PING\r\n" * 1000)
        seen = b""
        while seen.count(b"PONG\r\n") < 1000:
            seen += await stream.receive_some(65536)
        await stream.send_all(b"MSG a.pongs 1 2\r\nok\r\n")

    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        server = await FakeServer(pings).start(nursery)
        await nursery.start(plane(server.url, inbox).run)
        await inbox.until(lambda: inbox.log)
        nursery.cancel_scope.cancel()
    assert inbox.log == [("a.pongs", b"ok")]


async def test_bad_publish_arguments_are_clear_errors_and_inject_nothing():
    async def record(stream, index):
        await handshake(stream)

    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        server = await FakeServer(record).start(nursery)
        dp = plane(server.url, inbox)
        await nursery.start(dp.run)
        for subject in ("a b", "a\r\nPUB x 1", "", "a..b", "a.*", "a.>", ".a", 7, ["a"], None):
            with pytest.raises(TransportError, match="subject"):
                dp.publish(subject, b"x")  # type: ignore[arg-type]
        for data in ("text", None, memoryview(b"x"), [1]):
            with pytest.raises(TransportError, match="data must be bytes"):
                dp.publish("a.b", data)  # type: ignore[arg-type]
        assert dp.connected
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("subjects, ping, field", [
    ("a.>", 2.0, "subjects must be a list"),
    (["a b"], 2.0, "subjects: not a NATS subject"),
    ([None], 2.0, "subjects: not a NATS subject"),
    (["a.>"], -1, "ping_interval"),
    (["a.>"], float("nan"), "ping_interval"),
])
def test_bad_constructor_arguments_name_the_field(subjects, ping, field):
    with pytest.raises(TransportError, match=field):
        DataPlane(ClusterConfig(servers="nats://127.0.0.1:1"), subjects, print, print, ping_interval=ping)


async def test_creds_send_the_jwt_and_sign_the_nonce(tmp_path):
    nkeys = pytest.importorskip("nkeys")
    seed = nkeys.encode_seed(b"\x07" * 32, nkeys.PREFIX_BYTE_USER).decode()
    creds = tmp_path / "node.creds"
    creds.write_text(f"-----BEGIN NATS USER JWT-----\neyJ0eXAi.fake.jwt\n------END NATS USER JWT------\n\n"
                     f"** IMPORTANT **\n\n-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n")
    connects: list[dict] = []

    async def check(stream, index):
        await stream.send_all(info_line(nonce="n0nce-abc", auth_required=True))
        seen = b""
        while b"PING\r\n" not in seen:
            seen += await stream.receive_some(65536)
        connects.append(json.loads(seen.split(b"\r\n")[0][len(b"CONNECT "):]))
        await stream.send_all(b"PONG\r\n")

    async with trio.open_nursery() as nursery:
        server = await FakeServer(check).start(nursery)
        await nursery.start(plane(server.url, Inbox(), creds=str(creds)).run)
        nursery.cancel_scope.cancel()
    (connect,) = connects
    assert connect["jwt"] == "eyJ0eXAi.fake.jwt" and "nkey" not in connect
    signature = base64.urlsafe_b64decode(connect["sig"] + "==")
    assert nkeys.from_seed(bytearray(seed.encode())).verify(b"n0nce-abc", signature)
    assert connect["echo"] is True and connect["verbose"] is False and connect["headers"] is False


@pytest.mark.parametrize("content, field", [
    ("no blocks here", "creds"),
    ("-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n-----BEGIN USER NKEY SEED-----\nSUnotaseed\n"
     "------END USER NKEY SEED------\n", "creds: .* the user JWT is not a JWT"),
    ("-----BEGIN NATS USER JWT-----\na.b.c\n------END NATS USER JWT------\n-----BEGIN USER NKEY SEED-----\nSUnotaseed\n"
     "------END USER NKEY SEED------\n", "creds: .*seed"),
])
async def test_a_bad_creds_file_is_a_clear_error(tmp_path, content, field):
    creds = tmp_path / "bad.creds"
    creds.write_text(content)
    with pytest.raises(TransportError, match=field):
        await plane("nats://127.0.0.1:1", Inbox(), creds=str(creds)).run()


@pytest.mark.parametrize("field", ["nkeys_seed", "creds", "tls_ca"])
async def test_a_missing_credential_file_names_the_field(tmp_path, field):
    with pytest.raises(TransportError, match=f"{field}: no such file"):
        await plane("nats://127.0.0.1:1", Inbox(), **{field: str(tmp_path / "absent")}).run()


async def test_a_server_that_stops_reading_fills_the_bounded_buffer_then_the_ping_deadline_drops_it():
    async def deaf(stream, index):
        await handshake(stream)  # then never reads again, never answers a PING

    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        server = await FakeServer(deaf).start(nursery)
        dp = DataPlane(ClusterConfig(servers=server.url, reconnect_wait=0.05), ["a.>"], inbox.on_messages,
                       inbox.on_state, ping_interval=0.5)
        await nursery.start(dp.run)
        chunk = b"z" * 65536
        queued = 0
        with pytest.raises(OutboundFull, match="not reading"):
            while queued < 256 << 20:  # far past the buffer and the kernel's socket buffers
                dp.publish("a.x", chunk)
                queued += len(chunk)
                await trio.lowlevel.checkpoint()
        assert queued < 128 << 20
        await inbox.until(lambda: "disconnected" in inbox.log, timeout=5)
        nursery.cancel_scope.cancel()
    # What the deaf server never took is counted (and logged), not silently lost: either
    # still buffered (dropped unsent) or handed to the socket (maybe lost).
    assert dp.dropped_unsent + dp.lost_in_flight > 0
