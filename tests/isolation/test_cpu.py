"""Guests that never return: fuel, deadline, kill; and what an inline guest costs the node.

The plain "loop hits out_of_fuel / deadline" cases are in tests/host/test_wasm_processes.py;
these add the accounting (the message it died on, the caller's error), the threaded mode,
an init that never returns, and the node's other processes meanwhile.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from airssys_actors import CallFailed, Component, ExitReason, Limits, SpawnFailed

from .guests import COUNTER, CRASHER, ECHO, assert_serving

_COUNTER_TEXT = Path(COUNTER).read_text()
_INIT_LOCALS = "      (local $pairs i32) (local $start i64) (local $key i32)\n"
assert _COUNTER_TEXT.count(_INIT_LOCALS) == 1
#: counter.wat whose init loops forever before doing anything.
LOOPING_INIT = _COUNTER_TEXT.replace(_INIT_LOCALS, _INIT_LOCALS + "      (loop $forever (br $forever))\n").encode()


@pytest.mark.parametrize("limits, kind", [
    (Limits(fuel=5_000_000, deadline=None), "out_of_fuel"),
    (Limits(fuel=None, deadline=0.05), "deadline"),
])
async def test_a_loop_ends_the_process_the_caller_is_told_and_the_message_is_a_dead_letter(node, limits, kind):
    crasher = await node.spawn(CRASHER, limits=limits)
    echo = await node.spawn(ECHO)
    dead = node.dead_letter_count
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "loop")
    assert info.value.reason.kind == kind
    assert (await node.wait(crasher)).kind == kind
    (letter,) = node.dead_letters()[dead - node.dead_letter_count:]
    assert letter.value == "loop" and letter.reason.startswith(kind)
    assert await node.call(echo, "after") == "after"
    await assert_serving(node)


@pytest.mark.parametrize("limits, kind", [
    (Limits(fuel=5_000_000, deadline=None), "out_of_fuel"),
    (Limits(fuel=None, deadline=0.05), "deadline"),
])
async def test_an_init_that_never_returns_fails_the_spawn(node, limits, kind):
    with pytest.raises(SpawnFailed) as info:
        await node.spawn(LOOPING_INIT, limits=limits)
    assert info.value.reason.kind == kind
    assert node.pids() == []
    await assert_serving(node)


async def test_queued_messages_of_a_looping_guest_become_dead_letters(node):
    crasher = await node.spawn(CRASHER, limits=Limits(fuel=5_000_000, deadline=None))
    dead = node.dead_letter_count
    node.send_nowait(crasher, "loop")  # no checkpoint in between: all queued before it runs
    for i in range(5):
        node.send_nowait(crasher, ["queued", i])
    reason = await node.wait(crasher)
    assert reason.kind == "out_of_fuel"
    letters = node.dead_letters()[dead - node.dead_letter_count:]
    assert [d.value for d in letters] == ["loop"] + [["queued", i] for i in range(5)]
    assert {d.reason for d in letters} == {str(reason)}


async def test_an_inline_loop_holds_the_node_until_its_deadline(node):
    """Known limitation (docs/security.md): an inline guest runs on the node's thread, so
    every other process waits until its call returns or hits fuel/deadline."""
    crasher = await node.spawn(CRASHER, limits=Limits(fuel=None, deadline=0.3))
    echo = await node.spawn(ECHO)
    waited: list[float] = []
    sleeping = trio.Event()

    async def bystander() -> None:
        started = time.monotonic()
        sleeping.set()
        await trio.sleep(0.02)  # wakes up (late) once the loop has ended
        assert await node.call(echo, "late") == "late"
        waited.append(time.monotonic() - started)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bystander)
        await sleeping.wait()
        with pytest.raises(CallFailed):
            await node.call(crasher, "loop")
    assert waited and waited[0] > 0.25  # 0.02 s asked for, the whole deadline taken


async def test_a_threaded_loop_does_not_hold_the_node_and_kill_interrupts_it(node):
    crasher = await node.spawn(CRASHER, threaded=True, limits=Limits(fuel=None, deadline=None))
    echo = await node.spawn(ECHO)
    errors: list[BaseException] = []

    async def caller() -> None:
        try:
            await node.call(crasher, "loop", timeout=30)
        except CallFailed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await trio.sleep(0.05)
        started = time.monotonic()
        for i in range(50):  # served while the guest loops in its worker thread
            assert await node.call(echo, i) == i
        assert time.monotonic() - started < 1.0
        assert node.is_alive(crasher)
        node.kill(crasher)
        with trio.fail_after(5):
            assert await node.wait(crasher) == ExitReason("killed")
    assert len(errors) == 1 and errors[0].reason == ExitReason("killed")
    await assert_serving(node)


async def test_a_threaded_loop_hits_its_deadline(node):
    crasher = await node.spawn(CRASHER, threaded=True, limits=Limits(fuel=None, deadline=0.1))
    started = time.monotonic()
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "loop")
    assert info.value.reason.kind == "deadline"
    assert time.monotonic() - started < 3.0
    await assert_serving(node)


async def test_a_threaded_loop_runs_out_of_fuel(node):
    crasher = await node.spawn(CRASHER, threaded=True, limits=Limits(fuel=5_000_000, deadline=None))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "loop")
    assert info.value.reason.kind == "out_of_fuel"
    await assert_serving(node)


async def test_a_threaded_stack_overflow_is_a_trap(node):
    """The overflow happens on a worker thread's stack; wasmtime's own stack limit catches
    it first, whatever that thread's native stack size."""
    crasher = await node.spawn(CRASHER, threaded=True)
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "recurse")
    assert info.value.reason.kind == "trap" and "stack" in info.value.reason.detail
    await assert_serving(node)


async def test_many_loopers_at_once_each_end_alone(node):
    limits = Limits(fuel=2_000_000, deadline=None)
    loopers = [await node.spawn(CRASHER, limits=limits) for _ in range(20)]
    for pid in loopers:
        await node.send(pid, "loop")
    reasons = [await node.wait(pid) for pid in loopers]
    assert {r.kind for r in reasons} == {"out_of_fuel"}
    await assert_serving(node)


async def test_fuel_is_per_call_not_per_process(node):
    """Each call gets a fresh budget: a guest that stays under it runs indefinitely."""
    crasher = await node.spawn(CRASHER, limits=Limits(fuel=10_000_000, deadline=None))
    for _ in range(20):  # 20 x ~7 million units: far over one budget in total
        assert await node.call(crasher, ["spin", 1_000_000]) == "spun"
    assert node.process_info(crasher)["fuel_used"] > 100_000_000
    with pytest.raises(CallFailed) as info:  # but not in one call
        await node.call(crasher, ["spin", 2_000_000])
    assert info.value.reason.kind == "out_of_fuel"


async def test_a_loaded_component_is_reusable_after_its_processes_trap(node):
    crasher = Component.load(CRASHER)
    for _ in range(3):
        pid = await node.spawn(crasher, limits=Limits(fuel=1_000_000))
        with pytest.raises(CallFailed):
            await node.call(pid, "loop")
    pid = await node.spawn(crasher)
    assert await node.call(pid, "ping") == "pong"
