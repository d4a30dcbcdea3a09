"""Components that must never run: refused with a typed error, before any process starts,
while the node goes on serving. (The single-case checks of each refusal are in
tests/host/test_component_loading.py; here they run against a live node, plus fuzzing.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airssys_actors import (
    ActorError, Component, ComponentWorldMismatch, InvalidComponent, Limits, Node, UndecodableMessage,
)

from ..conftest import GUESTS
from .guests import ECHO, assert_serving

ECHO_TEXT = Path(ECHO).read_text()
ECHO_BINARY = bytes(wasmtime.wat2wasm(ECHO_TEXT))


def _derived(old: str, new: str) -> bytes:
    """echo.wat with one piece of text replaced (checked to be there)."""
    assert ECHO_TEXT.count(old) == 1, old
    return ECHO_TEXT.replace(old, new).encode()


#: echo importing its host functions from an interface of another world.
OTHER_WORLD = _derived('(import "airssys:actor/host@0.1.0" (instance $host',
                       '(import "acme:evil/net@1.0.0" (instance $host')
#: echo importing the host interface under an unknown version.
OTHER_VERSION = _derived('(import "airssys:actor/host@0.1.0" (instance $host',
                         '(import "airssys:actor/host@9.9.9" (instance $host')

BAD = {
    "empty": b"",
    "garbage": b"\x00\x01\x02garbage",
    "wasm magic, then garbage": b"\0asm\x0d\x00\x01\x00" + bytes(range(256)) * 4,
    "truncated component": ECHO_BINARY[: len(ECHO_BINARY) // 2],
    "latin-1 text": "(component ÿ)".encode("latin-1"),
    "core module": (GUESTS / "core_module.wat").read_bytes(),
    "missing exports": Path(ECHO).with_name("notaworld.wat").read_bytes(),
    "unknown host import": (GUESTS / "bad_import.wat").read_bytes(),
    "wrong export types": (GUESTS / "wrong_types.wat").read_bytes(),
    "another world's interface": OTHER_WORLD,
    "another version of the host interface": OTHER_VERSION,
}


@pytest.mark.parametrize("label", list(BAD))
async def test_a_bad_component_is_refused_while_the_node_serves(node, label):
    echo = await node.spawn(ECHO)
    before = node.pids()
    with pytest.raises(InvalidComponent):
        await node.spawn(BAD[label])
    assert node.pids() == before  # nothing started, nothing half-started
    assert await node.call(echo, label) == label
    await assert_serving(node)


@pytest.mark.parametrize("source, named", [
    (OTHER_WORLD, "imports 'acme:evil/net@1.0.0', which the host does not provide"),
    (OTHER_VERSION, "imports 'airssys:actor/host@9.9.9', which the host does not provide"),
])
def test_an_import_from_another_world_is_named(source, named):
    with pytest.raises(ComponentWorldMismatch) as info:
        Component.load(source)
    assert named in info.value.problems


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=512),
    st.binary(max_size=512).map(lambda b: b"\0asm\x0d\x00\x01\x00" + b),
    st.binary(max_size=512).map(lambda b: b"\0asm\x01\x00\x00\x00" + b),
    st.text(max_size=200).map(lambda t: ("(component " + t).encode()),
))
def test_random_bytes_are_invalid_components(data):
    with pytest.raises(InvalidComponent):
        Component.load(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, len(ECHO_BINARY) - 1), st.integers(1, 255)),
                      min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_a_bit_flipped_component_is_refused_or_runs_within_its_limits(flips, seed):
    """Damage a valid component: it is refused with a typed error, or (when the damage
    happens to leave it valid) it runs as a process bounded by its limits, and whatever it
    does ends in a value or a typed error."""
    data = bytearray(ECHO_BINARY)
    for offset, mask in flips:
        data[offset] ^= mask
    try:
        loaded = Component.load(bytes(data))
    except InvalidComponent:
        return
    message = random.Random(seed).choice([None, 1, "x", [1, {"a": b"b"}]])

    async def main() -> None:
        async with Node(shutdown_timeout=0.5) as node:
            try:
                pid = await node.spawn(loaded, limits=Limits(fuel=10_000_000, deadline=0.5, memory=16 << 20))
                await node.call(pid, message, timeout=2)
                await node.send(pid, message)
            except (ActorError, UndecodableMessage):
                pass
            await assert_serving(node)

    trio.run(main)
