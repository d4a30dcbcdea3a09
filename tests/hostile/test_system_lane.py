"""The system lane (replies, DOWN, trapped exits, timers) is bounded too. Each monitor of
a dead address answers at once with a DOWN in the monitoring process's own lane, each
link to one (when trapping exits) with an exit signal: a guest doing either in a loop
cannot grow the node. Monitors are capped by ``Limits.max_pending`` whether their target
lives or not (a DOWN not taken yet still counts); a process that floods its own lane
past ``SYSTEM_CAPACITY`` ends with ``system_limit``, and what did not fit is a dead
letter."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest

from airssys_actors import NOREPLY, Actor, ActorError, Capabilities, Context, Limits, Message, Node
from airssys_actors._mailbox import SYSTEM_CAPACITY
from airssys_actors._reasons import KINDS

from ..isolation.guests import ECHO, assert_serving
from .conftest import rss_of

FLOODER = os.path.join(os.path.dirname(__file__), "guests", "flooder.wat")
EVERYWHERE = Capabilities(send="*")
#: A host-call loop of 100 000+ calls takes seconds on a loaded machine: no deadline.
PATIENT = Limits(deadline=None)


def command(op: bytes, n: int, target: object = "") -> bytes:
    return op + struct.pack("<I", n) + str(target).encode()


def uint32(reply: bytes) -> int:
    assert reply[:1] == b"\xce", reply
    return int.from_bytes(reply[1:5], "big")


async def dead_pid(node: Node) -> Any:
    pid = await node.spawn(ECHO)
    node.kill(pid)
    await node.wait(pid)
    return pid


def test_system_limit_is_an_exit_reason_kind():
    assert "system_limit" in KINDS


async def test_monitoring_a_dead_pid_in_a_loop_is_capped_by_max_pending(node: Node):
    dead = await dead_pid(node)
    pid = await node.spawn(FLOODER, capabilities=EVERYWHERE, limits=Limits(max_pending=100))
    ok = uint32(await node.call_bytes(pid, command(b"m", 5000, dead)))
    assert ok == 100  # the rest were refused with err: the DOWNs queued count as monitors
    assert node.process_info(pid)["mailbox"] <= 100
    # Once it has taken its DOWNs, it may monitor again.
    assert uint32(await node.call_bytes(pid, command(b"m", 5000, dead))) == 100
    assert node.is_alive(pid)
    await assert_serving(node)


async def test_monitoring_a_dead_pid_in_a_loop_at_the_default_limit(node: Node):
    dead = await dead_pid(node)
    pid = await node.spawn(FLOODER, capabilities=EVERYWHERE, limits=PATIENT)
    before = rss_of(os.getpid())
    ok = uint32(await node.call_bytes(pid, command(b"m", 60_000, dead), timeout=60))
    assert ok == Limits().max_pending
    assert node.process_info(pid)["mailbox"] <= Limits().max_pending
    assert rss_of(os.getpid()) - before < 32 << 20
    assert node.is_alive(pid)
    await assert_serving(node)


async def test_linking_to_dead_pids_while_trapping_exits_ends_with_system_limit(node: Node):
    dead = await dead_pid(node)
    pid = await node.spawn(FLOODER, capabilities=EVERYWHERE, trap_exits=True, limits=PATIENT)
    letters = node.dead_letter_count
    before = rss_of(os.getpid())
    n = SYSTEM_CAPACITY + 20_000
    assert uint32(await node.call_bytes(pid, command(b"k", n, dead), timeout=120)) == n
    reason = await node.wait(pid)
    assert reason.kind == "system_limit"
    assert str(SYSTEM_CAPACITY) in (reason.detail or "")
    # Nothing is lost: every exit signal it got is a dead letter (those past the limit
    # at once, the queued ones when it exited), and the store stayed bounded.
    assert node.dead_letter_count - letters == n
    assert len(node.dead_letters()) <= 10_000
    assert {d.reason for d in node.dead_letters()[-100:]} <= {"system_limit", str(reason)}
    assert rss_of(os.getpid()) - before < 64 << 20
    await assert_serving(node)


async def test_a_guest_linking_to_a_dead_pid_without_trapping_exits_dies_of_noproc(node: Node):
    dead = await dead_pid(node)
    pid = await node.spawn(FLOODER, capabilities=EVERYWHERE)
    await node.call_bytes(pid, command(b"k", 10, dead))
    assert (await node.wait(pid)).kind == "noproc"
    await assert_serving(node)


class LaneFlooder(Actor):
    """A Python actor that floods its own lane the same ways (host code, same bounds)."""

    async def init(self, ctx: Context, args: Any) -> None:
        ctx.trap_exits = True

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if not isinstance(msg.value, list):
            return None  # a DOWN or an EXIT
        op, target, n = msg.value
        refused = 0
        for _ in range(n):
            try:
                ctx.monitor(target) if op == "monitor" else ctx.link(target)
            except ActorError:
                refused += 1
        return refused


async def test_a_python_actor_is_held_to_the_same_bounds(node: Node):
    dead = await dead_pid(node)
    monitoring = await node.spawn(LaneFlooder)
    assert await node.call(monitoring, ["monitor", str(dead), 10_500]) == 500
    assert node.is_alive(monitoring)
    linking = await node.spawn(LaneFlooder)
    assert await node.call(linking, ["link", str(dead), SYSTEM_CAPACITY + 10]) == 0
    assert (await node.wait(linking)).kind == "system_limit"
    await assert_serving(node)


async def test_the_lane_bound_is_visible_in_mailbox_statistics(node: Node):
    pid = await node.spawn(ECHO)
    proc = node._processes[pid]
    stats = proc.mailbox.statistics()
    assert stats.system_capacity == SYSTEM_CAPACITY


@pytest.mark.parametrize("trap_exits", [False, True])
async def test_monitors_of_live_targets_are_capped_too(node: Node, trap_exits: bool):
    target = await node.spawn(ECHO)
    pid = await node.spawn(FLOODER, capabilities=EVERYWHERE, trap_exits=trap_exits,
                           limits=Limits(max_pending=50))
    assert uint32(await node.call_bytes(pid, command(b"m", 500, target))) == 50
    node.kill(target)
    await node.wait(target)
    assert node.is_alive(pid)
    await assert_serving(node)


class Silent(Actor):
    """Takes calls and never answers them."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        return NOREPLY


async def test_requests_that_are_never_answered_are_capped_by_max_pending(node: Node):
    silent = await node.spawn(Silent)
    pid = await node.spawn(FLOODER, capabilities=EVERYWHERE, limits=Limits(max_pending=100))
    assert uint32(await node.call_bytes(pid, command(b"q", 500, silent))) == 100
    assert node.statistics().pending_calls <= 100
    # to a dead pid: refused (noproc), and nothing is held
    dead = await dead_pid(node)
    assert uint32(await node.call_bytes(pid, command(b"q", 500, dead))) == 0
    assert node.statistics().pending_calls <= 100
    assert node.is_alive(pid)
    await assert_serving(node)
