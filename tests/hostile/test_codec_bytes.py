"""The message codec with arbitrary bytes (property-based).

``tests/isolation/test_fuzz.py`` calls the example guests with random values and bytes
through ``call_bytes``. What it lacks, and this adds: the codec itself (``decode`` of any
bytes, msgpack extension types and headers that lie about their sizes included, raises
nothing but ``UndecodableMessage``); raw casts (bytes that are not msgpack sent by a real
guest's host ``send``, which ``Node.send`` cannot make); and Python actors on the
receiving end of both, which decode what they get. Whatever the bytes, the node still
answers a call to another process, and a process that chokes on them ends with a named
exit reason.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airssys_actors import ActorError, Actor, Capabilities, Component, Context, Limits, Message, Node, UndecodableMessage
from airssys_actors._codec import decode
from airssys_actors._reasons import KINDS

from ..isolation.guests import COUNTER, CRASHER, ECHO

FLOODER = os.path.join(os.path.dirname(__file__), "guests", "flooder.wat")

#: Headers that claim more than follows, extension types (timestamps of each width, with
#: out-of-range nanoseconds too), deep nesting, maps with unhashable keys, lone markers.
TRICKY_HEADS = [
    b"\xd4\x01", b"\xd5\x7f", b"\xd6\xff", b"\xd7\xff", b"\xd8\x05", b"\xc7\x0c\xff", b"\xc7\x00\xff",
    b"\xc8\xff\xff\x01", b"\xc9\xff\xff\xff\xff\x02", b"\xc4\xff", b"\xc5\xff\xff", b"\xc6\xff\xff\xff\xff",
    b"\xd9\xff", b"\xda\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xdc\xff\xff", b"\xdd\xff\xff\xff\xff",
    b"\xde\xff\xff", b"\xdf\xff\xff\xff\xff", b"\x81\x90", b"\x81\x80", b"\x81\x91\x01", b"\xc1",
    b"\xcf", b"\xd3", b"\xcb", b"\xca",
]
tricky = st.builds(
    lambda head, tail, depth: b"\x91" * depth + head + tail,
    st.sampled_from(TRICKY_HEADS), st.binary(max_size=24), st.sampled_from([0, 1, 3, 1100, 5000]),
)
raw_bytes = st.binary(max_size=200) | tricky


@settings(max_examples=3000, deadline=None)
@given(data=raw_bytes)
def test_decode_raises_nothing_but_undecodable_message(data: bytes):
    try:
        decode(data)
    except UndecodableMessage:
        pass


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=64), cut=st.integers(0, 64))
def test_a_truncated_value_is_undecodable_not_a_crash(data: bytes, cut: int):
    whole = b"\x92" + b"\xc4" + bytes([len(data)]) + data + b"\xc0"
    try:
        decode(whole[: min(cut, len(whole) - 1)])
    except UndecodableMessage:
        pass
    else:
        raise AssertionError("a truncated value decoded")


class Decoder(Actor):
    """Decodes everything it gets (as user code does) and replies with the value."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        return msg.value


class Careful(Actor):
    """Looks only at the raw bytes; "count" returns how many casts it got."""

    async def init(self, ctx: Context, args: Any) -> None:
        self.casts = 0

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.payload == b"\xa5count":
            return self.casts
        if msg.kind.name == "CAST":
            self.casts += 1
            return None
        return len(msg.payload)


TARGETS = ("echo", "counter", "crasher", "flooder", "decoder", "careful")
operations = st.lists(
    st.tuples(st.sampled_from(TARGETS), st.sampled_from(["call_bytes", "raw_cast"]), raw_bytes),
    min_size=1, max_size=5,
)
#: Tight enough that whatever the crasher is made to do ends within milliseconds.
LIMITS = Limits(fuel=20_000_000, deadline=1.0, memory=16 << 20)
_components: dict[str, Component] = {}


def components() -> dict[str, Component]:
    if not _components:
        for name, path in (("echo", ECHO), ("counter", COUNTER), ("crasher", CRASHER), ("flooder", FLOODER)):
            _components[name] = Component.load(path)
    return _components


def forward(target: str, payload: bytes) -> bytes:
    """The flooder command that makes it host-``send`` ``payload`` as-is to ``target``."""
    address = target.encode()
    return b"f" + struct.pack("<I", len(address)) + address + payload


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_raw_bytes_to_guests_and_python_actors_never_take_the_node_down(ops):
    wasm = components()

    async def main() -> None:
        async with Node(shutdown_timeout=0.5) as node:
            witness = await node.spawn(wasm["echo"])
            sender = await node.spawn(wasm["flooder"], capabilities=Capabilities(send="*"))

            async def start(name: str) -> Any:
                if name == "decoder":
                    return await node.spawn(Decoder)
                if name == "careful":
                    return await node.spawn(Careful)
                return await node.spawn(wasm[name], limits=LIMITS)

            pids = {name: await start(name) for name in TARGETS}
            exits = node.subscribe({"exit"})
            for target, how, data in ops:
                if not node.is_alive(pids[target]):
                    pids[target] = await start(target)
                pid = pids[target]
                if how == "call_bytes":
                    try:
                        reply = await node.call_bytes(pid, data, timeout=5)
                    except ActorError:
                        pass  # CallFailed (it choked on them, with a reason), MessageTooLarge...
                    else:
                        assert isinstance(reply, bytes)
                        if target == "careful":
                            assert decode(reply) == len(data)
                else:
                    sent = await node.call_bytes(sender, forward(str(pid), data), timeout=5)
                    assert sent in (b"\xce\x00\x00\x00\x01", b"\xce\x00\x00\x00\x00")
                # the node still answers a call to another process, every time
                assert await node.call(witness, ["still", "here"]) == ["still", "here"]
            if node.is_alive(pids["careful"]):
                casts = sum(1 for t, how, _ in ops if t == "careful" and how == "raw_cast")
                assert await node.call(pids["careful"], "count") == casts  # raw casts arrive as sent
            for event in exits.drain():
                assert event.data["reason_kind"] in KINDS
            fresh = await node.spawn(wasm["crasher"], limits=LIMITS)
            assert await node.call(fresh, "ping") == "pong"
            assert node.is_alive(sender)

    trio.run(main)
