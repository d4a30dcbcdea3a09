"""Dead letters are bounded in bytes, not only in count: each keeps a prefix of its
payload (``PAYLOAD_PREFIX`` bytes) with the payload's real ``size`` and ``truncated``,
its reason and address are capped, and the store holds at most ``dead_letter_bytes``.
1 MiB messages that die by the hundred (queued in a process that is killed, timers to a
dead pid, a guest sending to a full mailbox or to a dead pid) leave the node's memory
where it was, and every one of them is still accounted for."""

from __future__ import annotations

import os
import struct

import pytest
import trio

from airssys_actors import Capabilities, Limits, Node
from airssys_actors._deadletters import DEAD_LETTER_BYTES, PAYLOAD_PREFIX
from airssys_actors._reasons import MAX_REASON_TEXT

from ..isolation.guests import ECHO, assert_serving
from .conftest import rss_of

FLOODER = os.path.join(os.path.dirname(__file__), "guests", "flooder.wat")
MIB = 1 << 20
#: The largest value that encodes within the default 1 MiB message limit (bin32 header).
BLOB = bytes(MIB - 5)


def command(op: bytes, n: int, target: object = "") -> bytes:
    return op + struct.pack("<I", n) + str(target).encode()


def kept_bytes(node: Node) -> int:
    return sum(len(d.payload) + len(d.reason) + len(d.to) for d in node.dead_letters())


async def test_1_mib_messages_queued_in_killed_processes_keep_only_a_prefix():
    async with Node(shutdown_timeout=1.0) as node:

        async def one_round() -> None:
            pid = await node.spawn(ECHO, mailbox_capacity=50)
            await node.suspend(pid)
            for _ in range(50):
                node.send_nowait(pid, BLOB)
            node.kill(pid)
            await node.wait(pid)
            await trio.sleep(0.01)

        await one_round()
        before = rss_of(os.getpid())
        for _ in range(6):
            await one_round()
        grown = rss_of(os.getpid()) - before
        assert grown < 48 << 20, f"RSS grew by {grown >> 20} MiB keeping 300 MiB of dead letters"
        letters = node.dead_letters()
        assert node.dead_letter_count == len(letters) == 350
        for letter in letters:
            assert letter.reason == "killed"
            assert letter.size == len(BLOB) + 5
            assert letter.truncated
            assert len(letter.payload) == PAYLOAD_PREFIX
            assert letter.value == letter.payload  # a prefix is not a value: raw bytes
        await assert_serving(node)


async def test_timers_with_1_mib_payloads_to_a_dead_pid_are_truncated_dead_letters(node: Node):
    pid = await node.spawn(ECHO)
    node.kill(pid)
    await node.wait(pid)

    async def one_round() -> list:
        # 100 MiB of payloads wait in the timers (as they must), then die
        with node.subscribe({"dead_letter"}) as events:
            for _ in range(100):
                node.send_after(pid, BLOB, 0)
            await trio.sleep(0.2)
            return events.drain()

    await one_round()
    before = rss_of(os.getpid())
    for _ in range(4):
        seen = await one_round()
    grown = rss_of(os.getpid()) - before
    assert grown < 48 << 20, f"RSS grew by {grown >> 20} MiB"
    assert node.dead_letter_count == 500
    assert {d.reason for d in node.dead_letters()} == {"timer_target_gone"}
    assert all(d.truncated and d.size == MIB for d in node.dead_letters())
    assert {e.data["bytes"] for e in seen} == {MIB}  # the event gives the real size too
    await assert_serving(node)


async def test_a_guest_sending_1_mib_to_a_full_mailbox_or_a_dead_pid(node: Node):
    sink = await node.spawn(ECHO, mailbox_capacity=1)
    await node.suspend(sink)
    dead = await node.spawn(ECHO)
    node.kill(dead)
    await node.wait(dead)
    pid = await node.spawn(FLOODER, capabilities=Capabilities(send="*"), limits=Limits(deadline=None))
    # (each 1 MiB send is slow through the host layer today: a few suffice)
    reply = await node.call_bytes(pid, command(b"d", 6, sink), timeout=120)
    assert reply == b"\xce\x00\x00\x00\x01"  # one fit, five are dead letters
    letters = node.dead_letters()
    assert [d.reason for d in letters] == ["mailbox_full"] * 5
    assert all(d.size == MIB and d.truncated and d.sender == pid for d in letters)
    # to a dead pid: each send is refused (err noproc) and nothing is kept
    reply = await node.call_bytes(pid, command(b"d", 6, dead), timeout=120)
    assert reply == b"\xce\x00\x00\x00\x00"
    assert node.dead_letter_count == 5
    assert node.is_alive(pid)
    node.resume(sink)
    await assert_serving(node)


async def test_the_store_is_bounded_in_bytes_and_still_counts_everything():
    budget = 1 << 20
    async with Node(shutdown_timeout=1.0, dead_letter_bytes=budget) as node:
        for _ in range(4):
            pid = await node.spawn(ECHO, mailbox_capacity=1000)
            await node.suspend(pid)
            for i in range(1000):
                node.send_nowait(pid, i)
            await node.exit(pid, "x" * 100_000)  # a long reason on each of its 1000 letters
            await node.wait(pid)
        assert node.dead_letter_count == 4000
        letters = node.dead_letters()
        assert 0 < len(letters) < 4000
        assert kept_bytes(node) <= budget
        newest = letters[-1]
        assert newest.value == 999 and not newest.truncated
        assert len(newest.reason.encode()) <= MAX_REASON_TEXT
        assert newest.reason.endswith("...[truncated, 100000 bytes]")
        await assert_serving(node)


async def test_the_default_byte_budget_holds(node: Node):
    for _ in range(3):
        pid = await node.spawn(ECHO, mailbox_capacity=1000)
        await node.suspend(pid)
        for _ in range(1000):
            node.send_nowait(pid, BLOB[:8192])
        await node.exit(pid, "y" * 10_000)
        await node.wait(pid)
    assert node.dead_letter_count == 3000
    assert kept_bytes(node) <= DEAD_LETTER_BYTES


async def test_a_dead_letters_address_is_capped(node: Node):
    node.send_after("n" * 1_000_000, "lost", 0)  # a name no one has: timer_target_gone
    await trio.sleep(0.05)
    (letter,) = node.dead_letters()
    assert letter.reason == "timer_target_gone"
    assert letter.value == "lost"
    assert len(letter.to.encode()) <= MAX_REASON_TEXT
    assert letter.to.endswith("...[truncated, 1000000 bytes]")


async def test_a_node_that_keeps_no_dead_letters_still_counts_them():
    async with Node(shutdown_timeout=1.0, dead_letter_capacity=0) as node:
        node.send_after("nobody", "lost", 0)
        await trio.sleep(0.05)
        assert node.dead_letter_count == 1
        assert node.dead_letters() == []
        await assert_serving(node)


def test_the_dead_letter_bounds_are_checked_where_they_enter():
    # A value of the right type out of range is a ValueError, a value of the wrong type a
    # TypeError (as for every number the node takes); both name the parameter.
    for bad, error in ((-1, ValueError), (1.5, TypeError), (float("nan"), TypeError), ("10", TypeError),
                       (True, TypeError)):
        with pytest.raises(error, match=r"^dead_letter_bytes"):
            Node(dead_letter_bytes=bad)
        with pytest.raises(error, match=r"^dead_letter_capacity"):
            Node(dead_letter_capacity=bad)
