"""A new version whose ``upgrade`` never returns (examples/components/slow_upgrade.wat):
the call is bounded by the process's fuel or deadline, the change rolls back with that
cause, and the old version keeps running with its state. (Rollback on err and on a trap
is in tests/upgrade/test_hot_deploy.py.)"""

from __future__ import annotations

import pytest
import trio

import supervisors
from airssys_actors import Component, Limits, UpgradeFailed
from supervisors import Child, Supervisor

from .guests import COUNTER, ECHO, SLOW_UPGRADE, assert_serving


async def _tree(node, limits, threaded=False):
    v1 = Component.load(COUNTER, version="v1")
    children = [Child(f"c{i}", v1, args={"start": 10 * i}, name=f"c{i}", limits=limits, threaded=threaded)
                for i in range(2)]
    children.append(Child("echo", ECHO, name="echo"))
    return await supervisors.start(node, Supervisor("root", children=children))


@pytest.mark.parametrize("limits, threaded, cause", [
    (Limits(fuel=10_000_000), False, "out_of_fuel"),
    (Limits(fuel=None, deadline=0.1), False, "deadline"),
    (Limits(fuel=None, deadline=0.1), True, "deadline"),
    (Limits(fuel=10_000_000, deadline=None), True, "out_of_fuel"),
])
async def test_an_upgrade_that_never_returns_rolls_back(node, limits, threaded, cause):
    root = await _tree(node, limits, threaded)
    for i in range(2):
        assert await node.call(f"c{i}", 5) == 10 * i + 5
    pids = [await root.child_pid(f"c{i}") for i in range(2)]
    with pytest.raises(UpgradeFailed) as info:
        await root.upgrade("counter", SLOW_UPGRADE, version="slow")
    assert info.value.cause == cause and info.value.process == "c0"
    assert info.value.report.processes == ()
    for i in range(2):
        assert await node.call(f"c{i}", "get") == 10 * i + 5
        assert node.process_info(f"c{i}")["version"] == "v1"
    assert [await root.child_pid(f"c{i}") for i in range(2)] == pids
    assert [r.version for r in await root.which_children()][:2] == ["v1", "v1"]
    assert await node.call("echo", "fine") == "fine"
    await assert_serving(node)


async def test_messages_sent_during_a_failed_upgrade_are_not_lost(node):
    root = await _tree(node, Limits(fuel=None, deadline=0.2), threaded=True)
    dead = node.dead_letter_count
    failures: list[UpgradeFailed] = []

    async def upgrade() -> None:
        try:
            await root.upgrade("c0", SLOW_UPGRADE, version="slow")
        except UpgradeFailed as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upgrade)
        for _ in range(20):
            await node.send("c0", "incr")  # queue while c0 is suspended
            await trio.sleep(0.005)
    assert [f.cause for f in failures] == ["deadline"]
    assert await node.call("c0", "get") == 20
    assert node.dead_letter_count == dead


async def test_the_next_upgrade_after_a_rollback_works(node):
    root = await _tree(node, Limits(fuel=10_000_000))
    await node.call("c0", 1)
    with pytest.raises(UpgradeFailed):
        await root.upgrade("c0", SLOW_UPGRADE, version="slow")
    report = await root.upgrade("c0", COUNTER.replace("counter.wat", "counter_v2.wat"), version="v2")
    assert [p.to_version for p in report.processes] == ["v2"]
    assert await node.call("c0", "stats") == {"count": 1, "updates": 0, "version": "v2"}
