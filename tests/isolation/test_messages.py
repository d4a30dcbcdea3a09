"""Payloads msgpack cannot decode, and deeply nested ones, in both directions: host to
guest, guest to host, guest to guest and guest to Python actor. Callers get a typed error
(or the raw bytes, with call_bytes); processes that choke on them exit with a reason; the
node never crashes."""

from __future__ import annotations

import msgpack
import pytest
import trio

import supervisors
from airssys_actors import (
    ActorError, CallFailed, Capabilities, UndecodableMessage, UnencodableMessage, decode,
)
from airssys_actors._deadletters import PAYLOAD_PREFIX
from supervisors import Child, Supervisor

from ..runtime.actors import Echo, Recorder
from .guests import COUNTER, CRASHER, ECHO, PINGER, RawRecorder, assert_serving, deep_bytes

NOT_MSGPACK = {
    "reserved byte 0xc1": b"\xc1",
    "truncated array": b"\x93\x01",
    "truncated str": b"\xa5ab",
    "bin32 claiming 4 GiB": b"\xc6\xff\xff\xff\xff\x00",
    "two values": b"\x01\x02",
    "empty": b"",
    "100000 levels deep": deep_bytes(100_000),
    "an unhashable map key": b"\x81\x91\x01\x01",
}


# -- guest to host -------------------------------------------------------------------

@pytest.mark.parametrize("command, size", [
    ("deep", 100_001), ("nested-big", 1_000_001), ("liar", 6), ("unhashable", 4),
])
async def test_an_undecodable_reply_is_a_typed_error_and_the_guest_goes_on(node, command, size):
    crasher = await node.spawn(CRASHER)
    with pytest.raises(UndecodableMessage):
        await node.call(crasher, command)
    assert len(await node.call_bytes(crasher, msgpack.packb(command))) == size  # the raw bytes
    assert await node.call(crasher, "ping") == "pong"
    await assert_serving(node)


def test_undecodable_message_is_an_actor_error():
    assert issubclass(UndecodableMessage, ActorError)


async def test_a_deep_reply_that_still_decodes_is_delivered(node):
    crasher = await node.spawn(CRASHER)
    value = await node.call(crasher, ["deep", 1000])
    for _ in range(1000):
        (value,) = value
    assert value is None


# -- host to guest -------------------------------------------------------------------

@pytest.mark.parametrize("label", list(NOT_MSGPACK))
async def test_bytes_that_are_not_msgpack_reach_guests_safely(node, label):
    data = NOT_MSGPACK[label]
    echo = await node.spawn(ECHO)
    counter = await node.spawn(COUNTER)
    crasher = await node.spawn(CRASHER)
    assert await node.call_bytes(echo, data) == data            # echo does not look inside
    assert await node.call_bytes(crasher, data) == b"\xa4pong"  # crasher: not a command
    with pytest.raises(CallFailed) as info:                     # counter: not a number
        await node.call_bytes(counter, data)
    assert info.value.reason.kind == "error" and info.value.reason.detail == "unknown message"
    assert await node.call(echo, "ok") == "ok" and await node.call(crasher, "ping") == "pong"


async def test_a_deep_python_value_is_unencodable_and_never_sent(node):
    echo = await node.spawn(ECHO)
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(UnencodableMessage):
        await node.call(echo, value)
    with pytest.raises(UnencodableMessage):
        await node.send(echo, value)
    assert node.process_info(echo)["messages_in"] == 0


# -- to Python actors ------------------------------------------------------------------

@pytest.mark.parametrize("label", list(NOT_MSGPACK))
async def test_bytes_that_are_not_msgpack_crash_a_decoding_python_actor_with_a_reason(node, label):
    echo = await node.spawn(Echo)
    dead = node.dead_letter_count
    with pytest.raises(CallFailed) as info:
        await node.call_bytes(echo, NOT_MSGPACK[label])
    reason = info.value.reason
    assert reason.kind == "error" and reason.detail.startswith("UndecodableMessage")
    (letter,) = node.dead_letters()[dead - node.dead_letter_count:]
    # (a dead letter keeps the payload's first PAYLOAD_PREFIX bytes and its real size)
    sent = NOT_MSGPACK[label]
    assert letter.payload == sent[:PAYLOAD_PREFIX] and letter.size == len(sent)
    assert letter.reason == str(reason)
    await assert_serving(node)


async def test_a_python_actor_that_keeps_raw_bytes_is_unaffected(node):
    raw = await node.spawn(RawRecorder)
    for data in NOT_MSGPACK.values():
        assert await node.call_bytes(raw, data) == b"\xa2ok"
    log = await node.call_bytes(raw, b"\xa3log")
    assert [entry[2] for entry in decode(log)] == list(NOT_MSGPACK.values())


# -- guest to guest, guest to Python -----------------------------------------------------

async def test_a_deep_reply_travels_guest_to_guest_as_bytes(node):
    crasher = await node.spawn(CRASHER)
    pinger = await node.spawn(PINGER, capabilities=Capabilities(send=[str(crasher)]))
    raw = await node.call_bytes(pinger, msgpack.packb(["ask", str(crasher), "deep"]))
    assert raw == deep_bytes(100_000)  # pinger answers with the reply as-is
    with pytest.raises(UndecodableMessage):
        await node.call(pinger, ["ask", str(crasher), "deep"])
    assert await node.call(pinger, "ping") == "pong"


async def test_a_guest_sends_undecodable_bytes_to_python_actors(node):
    """pinger's ["send", target, value] sends value's raw bytes: the bytes arrive with the
    guest as sender. A raw-bytes actor keeps them; a decoding actor exits with a reason and
    the message becomes a dead letter."""
    raw = await node.spawn(RawRecorder, name="raw")
    rec = await node.spawn(Recorder, name="rec")
    pinger = await node.spawn(PINGER, capabilities=Capabilities(send=["raw", "rec"]))
    payload = deep_bytes(100_000)
    for target in ("raw", "rec"):
        command = b"\x93\xa4send" + msgpack.packb(target) + payload
        assert await node.call_bytes(pinger, command) == b"\xa2ok"
    assert (await node.wait(rec)).detail.startswith("UndecodableMessage")
    (entry,) = decode(await node.call_bytes(raw, b"\xa3log"))
    assert entry == ["cast", str(pinger), payload]
    assert any(d.payload == payload[:PAYLOAD_PREFIX] and d.size == len(payload) and d.sender == pinger
               for d in node.dead_letters())
    await assert_serving(node)


# -- a supervisor is a Python actor too ------------------------------------------------------

@pytest.mark.parametrize("payload", [msgpack.packb(5), deep_bytes(2000)], ids=["an int", "not msgpack"])
async def test_a_malformed_request_from_a_guest_does_not_crash_a_supervisor(node, payload):
    root = await supervisors.start(node, Supervisor("root", children=[Child("c0", COUNTER, name="c0")]))
    pinger = await node.spawn(PINGER, capabilities=Capabilities(send=[str(root.pid)]))
    command = b"\x93\xa3ask" + msgpack.packb(str(root.pid)) + payload
    reply = decode(await node.call_bytes(pinger, command))
    await trio.sleep(0.05)
    assert root.alive, reply
    assert node.whereis("c0") is not None
