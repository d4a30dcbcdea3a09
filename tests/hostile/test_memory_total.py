"""``Limits.memory`` bounds an instance's total: all its linear memories and its tables
together. A guest that grows without end stops at that total and dies with the node's
memory back near where it was. With memory tracking (the host memory creator) the host
sees the refusal and names it ``memory_limit``; with wasmtime's own memories the guest
gets -1 from ``memory.grow`` and its reason is whatever it does then (here ``trap``)."""

from __future__ import annotations

import pytest
import trio

from airssys_actors import CallFailed, Component, Limits, SpawnFailed

from ..conftest import GUESTS
from ..host.test_memory_tracking import default_engine, run_tracked
from ..isolation.guests import CRASHER, assert_serving, rss
from ._wat import guest

GROWER = str(GUESTS / "grower.wat")
PAGE = 65536
#: handle grows a table by the payload's length in elements each call (trap if refused)
TABLE_GROWER = guest(
    extra_tables="(table $t 1 funcref)",
    handle="(if (i32.eq (table.grow $t (ref.null func) (local.get $len)) (i32.const -1)) (then unreachable))",
)


@default_engine
async def test_two_memories_share_one_limit(node):
    """grower's second memory may not take the whole limit: its first memory counts too
    (with wasmtime's own memories the limit is split between the two)."""
    limits = Limits(memory=32 << 20)
    pid = await node.spawn(GROWER, limits=limits)
    with pytest.raises(CallFailed) as info:
        await node.call_bytes(pid, b"x" * 400)  # 400 pages = 25 MiB: under 32, over half
    assert info.value.reason.kind == "trap"
    within = await node.spawn(GROWER, limits=limits)
    assert await node.call_bytes(within, b"x" * 200) == b"x" * 200  # 12.5 MiB fits
    await assert_serving(node)


@default_engine
async def test_tables_count_against_the_memory_limit(node):
    """A table that may grow to 100,000 elements (8 bytes each: 800 KB) does not fit in
    512 KiB next to a memory: the guest does not start, with reason memory_limit. With
    room for its table it starts, and its table stops at table_elements."""
    component = Component.load(TABLE_GROWER.encode())
    with pytest.raises(SpawnFailed) as info:
        await node.spawn(component, limits=Limits(memory=512 << 10, table_elements=100_000))
    assert info.value.reason.kind == "memory_limit"
    pid = await node.spawn(component, limits=Limits(memory=512 << 10, table_elements=1000))
    assert await node.call_bytes(pid, b"x" * 900) == b"x" * 900
    with pytest.raises(CallFailed) as grown:
        await node.call_bytes(pid, b"x" * 200)  # past 1000 elements
    assert grown.value.reason.kind == "trap"
    await assert_serving(node)


@default_engine
@pytest.mark.parametrize("threaded", [False, True])
async def test_a_guest_that_allocates_without_end_stops_at_the_default_limit(node, threaded):
    before = rss()
    pid = await node.spawn(CRASHER, threaded=threaded)  # the default limit: 256 MiB
    with pytest.raises(CallFailed) as info:
        await node.call(pid, "alloc")
    assert info.value.reason.kind == "trap"
    assert await node.wait(pid) == info.value.reason
    await trio.sleep(0.2)  # the reaper frees a dead guest's store when the node is idle
    await assert_serving(node)
    # memory.grow touches no pages, and the dead guest's store is freed
    assert rss() - before < 64 << 20


def test_with_the_host_memory_creator_the_total_is_exact_and_named_memory_limit():
    out = run_tracked("""
        async def main(node):
            out = {}
            limits = Limits(memory=32 << 20)
            pid = await node.spawn(GROWER, limits=limits)
            out["first"] = await node.call_bytes(pid, b"x" * 400) == b"x" * 400  # 25 MiB: fits
            out["size"] = mem(node, pid)
            try:
                await node.call_bytes(pid, b"x" * 200)  # 25 + 12.5 MiB: over the total
            except CallFailed as exc:
                out["reason"] = exc.reason.kind
            before = rss()
            hog = await node.spawn(COMPONENTS + "/crasher.wat")  # the default limit
            try:
                await node.call(hog, "alloc")
            except CallFailed as exc:
                out["alloc"] = exc.reason.kind
            await live_memories(0)
            out["rss_growth"] = rss() - before
            echo = await node.spawn(COMPONENTS + "/echo.wat")
            out["serving"] = await node.call(echo, "ok") == "ok"
            return out
    """)
    assert out["first"] is True and out["size"] <= 32 << 20
    assert out["reason"] == "memory_limit"
    assert out["alloc"] == "memory_limit"
    assert out["rss_growth"] < 64 << 20
    assert out["serving"] is True
