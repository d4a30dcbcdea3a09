"""Guests that take memory or produce too much: the memory limit, stack overflow, and
replies too large to copy out or to deliver. (The single-process basics are in
tests/host/test_wasm_processes.py.)"""

from __future__ import annotations

import pytest

from airssys_actors import CallFailed, Capabilities, Limits, MessageTooLarge

from .guests import CRASHER, ECHO, PINGER, assert_serving, dead_letter_reasons, rss


@pytest.mark.parametrize("threaded", [False, True])
async def test_unbounded_allocation_stops_at_the_limit_with_a_trap(node, threaded):
    """memory.grow past Limits.memory fails (returns -1) instead of growing; crasher then
    executes `unreachable`, so the reason is a trap, and the host never committed more."""
    crasher = await node.spawn(CRASHER, limits=Limits(memory=8 << 20), threaded=threaded)
    echo = await node.spawn(ECHO)
    before = rss()
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "alloc")
    assert info.value.reason.kind == "trap"
    assert "unreachable" in info.value.reason.detail
    assert rss() - before < 64 << 20
    assert await node.call(echo, "after") == "after"


async def test_many_allocators_at_once_stay_within_their_limits(node):
    before = rss()
    limits = Limits(memory=16 << 20)
    hogs = [await node.spawn(CRASHER, limits=limits) for _ in range(20)]
    for pid in hogs:
        await node.send(pid, "alloc")
    reasons = [await node.wait(pid) for pid in hogs]
    assert {r.kind for r in reasons} == {"trap"}
    # 20 x 16 MiB could be 320 MiB; memory.grow does not touch pages, and the guests die.
    assert rss() - before < 160 << 20
    await assert_serving(node)


async def test_a_reply_too_big_to_copy_out_fails_a_guest_to_guest_request(node):
    """crasher's 4 MiB "big" reply cannot leave the guest (message_too_large); a guest that
    requested it gets failed(reason) and goes on."""
    crasher = await node.spawn(CRASHER)
    pinger = await node.spawn(PINGER, capabilities=Capabilities(send=[str(crasher)]))
    reply = await node.call(pinger, ["ask", str(crasher), "big"])
    assert reply[0] == "message_too_large"
    assert (await node.wait(crasher)).kind == "message_too_large"
    assert await node.call(pinger, "ping") == "pong"
    await assert_serving(node)


async def test_a_reply_over_max_message_is_refused_and_accounted_for(node):
    crasher = await node.spawn(CRASHER, limits=Limits(max_message=1000))
    dead = node.dead_letter_count
    for command in ("nested-big", ["deep", 1000]):
        with pytest.raises(MessageTooLarge):
            await node.call(crasher, command)
    assert dead_letter_reasons(node, dead) == {"reply_too_large": 2}
    assert await node.call(crasher, ["deep", 3]) == [[[None]]]  # the process goes on


async def test_a_reply_over_max_message_fails_a_guest_to_guest_request(node):
    crasher = await node.spawn(CRASHER, limits=Limits(max_message=1000))
    pinger = await node.spawn(PINGER, capabilities=Capabilities(send=[str(crasher)]))
    reply = await node.call(pinger, ["ask", str(crasher), ["deep", 5000]])
    assert reply[0] == "error" and "exceeds the limit of 1000 bytes" in reply[1]
    assert node.is_alive(crasher)


async def test_a_message_over_a_guests_max_message_is_refused_and_it_goes_on(node):
    echo = await node.spawn(ECHO, limits=Limits(max_message=1000))
    with pytest.raises(MessageTooLarge):
        await node.call_bytes(echo, b"\xc5\x07\xd0" + b"x" * 2000)
    assert await node.call(echo, "small") == "small"


def test_accesses_at_and_across_the_end_of_a_memory_trap_without_guard_pages():
    """The shared engine has no guard regions and no signal handlers: every bounds check
    is compiled in. A load or store that reaches one byte past the end traps, with or
    without a static offset, and after memory.grow the new page is in bounds."""
    import wasmtime

    from airssys_actors._host._engine import engine_host

    engine = engine_host().engine
    module = wasmtime.Module(engine, """(module (memory 1)
      (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
      (func (export "load_offset") (param i32) (result i32) (i32.load offset=65532 (local.get 0)))
      (func (export "store") (param i32) (i32.store (local.get 0) (i32.const 7)))
      (func (export "grow") (result i32) (memory.grow (i32.const 1))))""")
    store = wasmtime.Store(engine)
    store.set_fuel(10_000_000)
    store.set_epoch_deadline(1 << 30)
    exports = wasmtime.Instance(store, module, []).exports(store)

    def traps(name: str, arg: int) -> bool:
        try:
            exports[name](store, arg)
        except wasmtime.Trap as trap:
            assert "out of bounds memory access" in str(trap)
            return True
        return False

    assert not traps("load", 65532) and not traps("store", 65532) and not traps("load_offset", 0)
    for name, arg in [("load", 65533), ("load", 65536), ("load", 16 << 20), ("load", -4),
                      ("store", 65533), ("store", 17 << 20), ("load_offset", 1), ("load_offset", 2)]:
        assert traps(name, arg), (name, arg)
    assert exports["grow"](store) == 1
    assert not traps("load", 65536) and not traps("store", 131068) and traps("store", 131069)
