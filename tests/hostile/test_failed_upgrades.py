"""Hostile class 7: an upgrade that fails or is rolled back has no side effects.

Whatever ends the change (the new version's ``upgrade`` returns an error, traps, runs out
of fuel or time; a canary's probe fails; the caller's deadline passes or the caller gives
up), every process that was not committed still runs its old version with its state, no
message sent to it meanwhile is lost, it is not left suspended, its supervisor still
restarts it with the old version, and the request leaves nothing behind (no open
handoff, nothing in the supervisor's mailbox).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

import supervisors
from airssys_actors import Capabilities, Component, Limits, UpgradeFailed
from supervisors import Child, Supervisor
from supervisors._handoff import open_count

from ..conftest import component_path

V1 = component_path("counter.wat")
PICKY = str(Path(__file__).parent / "guests" / "counter_picky.wat")
CASTS = 300


def counters(starts: list[int], **kw) -> list[Child]:
    v1 = Component.load(V1, version="v1")
    return [Child(f"c{i}", v1, args={"start": s}, name=f"c{i}", **kw) for i, s in enumerate(starts)]


async def start(node, children) -> supervisors.SupervisorRef:
    return await supervisors.start(node, Supervisor("root", name="root-sup", children=children))


async def upgrade_under_traffic(node, names, change):
    """Run ``change`` while each process in ``names`` is sent CASTS casts of 1, so that
    messages queue at every process while it is suspended; returns the UpgradeFailed."""
    failure: list[UpgradeFailed] = []

    async def traffic(name: str) -> None:
        for i in range(CASTS):
            node.send_nowait(name, 1)
            if i % 7 == 0:
                await trio.lowlevel.checkpoint()

    async def run_change() -> None:
        try:
            await change()
        except UpgradeFailed as exc:
            failure.append(exc)

    async with trio.open_nursery() as nursery:
        for name in names:
            nursery.start_soon(traffic, name)
        nursery.start_soon(run_change)
    assert failure, "the change was expected to fail"
    return failure[0]


async def assert_nothing_left_behind(node, root) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert open_count() == 0
    assert node.process_info(root.pid)["mailbox"] == 0
    assert root.alive


async def test_rolling_change_failing_at_the_third_process(node):
    """c0 and c1 change (rolling keeps what it finished); c2's state is refused, so c2,
    c3 and c4 keep v1, their counts and every message sent meanwhile."""
    starts = [0, 1, 2000, 3, 4]
    root = await start(node, counters(starts))
    names = [f"c{i}" for i in range(5)]
    exc = await upgrade_under_traffic(node, names, lambda: root.upgrade(
        "counter", PICKY, version="picky", strategy="rolling"))
    assert (exc.process, exc.cause) == ("c2", "error") and "count too large" in exc.detail
    assert [p.child for p in exc.report.processes] == ["c0", "c1"]
    versions = ["picky", "picky", "v1", "v1", "v1"]
    for name, start_, version in zip(names, starts, versions, strict=True):
        assert await node.call(name, "get") == start_ + CASTS  # none lost
        assert node.process_info(name)["version"] == version
    assert [r.version for r in await root.which_children()] == versions
    await assert_nothing_left_behind(node, root)
    # The supervisor restarts each with the version it adopted: c0 the new one, c2 the old.
    for name, version in (("c0", "picky"), ("c2", "v1")):
        await node.send(name, "crash")
        await trio.testing.wait_all_tasks_blocked()
        assert node.process_info(name)["version"] == version


async def test_atomic_change_failing_at_the_third_process(node):
    starts = [0, 1, 2000, 3, 4]
    root = await start(node, counters(starts))
    names = [f"c{i}" for i in range(5)]
    exc = await upgrade_under_traffic(node, names, lambda: root.upgrade("counter", PICKY, version="picky"))
    assert (exc.process, exc.cause) == ("c2", "error")
    assert exc.report.processes == ()
    for name, start_ in zip(names, starts, strict=True):
        assert await node.call(name, "get") == start_ + CASTS
        assert node.process_info(name)["version"] == "v1"
    assert [r.version for r in await root.which_children()] == ["v1"] * 5
    await assert_nothing_left_behind(node, root)
    await node.send("c1", "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert node.process_info("c1")["version"] == "v1"


BAD_VERSIONS = [
    ("counter_reject.wat", None, "error"),
    ("counter_trap.wat", None, "trap"),
    ("slow_upgrade.wat", Limits(fuel=20_000_000, deadline=None), "out_of_fuel"),
    ("slow_upgrade.wat", Limits(fuel=None, deadline=0.05), "deadline"),
]


@pytest.mark.parametrize("strategy", ["atomic", "rolling"])
@pytest.mark.parametrize(("bad", "limits", "cause"), BAD_VERSIONS, ids=[c for *_, c in BAD_VERSIONS])
async def test_upgrade_export_that_fails_leaves_every_process_as_it_was(node, bad, limits, cause, strategy):
    starts = [5, 6, 7]
    root = await start(node, counters(starts, limits=limits))
    names = ["c0", "c1", "c2"]
    pids = [node.whereis(n) for n in names]
    exc = await upgrade_under_traffic(node, names, lambda: root.upgrade(
        "counter", component_path(bad), version="bad", strategy=strategy))
    assert (exc.process, exc.cause) == ("c0", cause)
    assert exc.report.processes == ()
    for name, start_ in zip(names, starts, strict=True):
        assert await node.call(name, "get") == start_ + CASTS
        assert node.process_info(name)["version"] == "v1"
    assert [node.whereis(n) for n in names] == pids
    assert [r.version for r in await root.which_children()] == ["v1"] * 3
    await assert_nothing_left_behind(node, root)


def pingers(n: int) -> list[Child]:
    a = Component.load(component_path("pinger.wat"), version="a")
    return [Child(f"p{i}", a, name=f"p{i}", capabilities=Capabilities(timers=10)) for i in range(n)]


#: A probe the new version answers only after a minute: ``["after", ms]`` defers the
#: reply until a timer fires.
SLOW_PROBE = ["after", 60_000]


async def test_a_canary_whose_probe_fails_goes_back_and_loses_no_message(node):
    root = await start(node, pingers(3))
    names = ["p0", "p1", "p2"]
    before = {n: node.process_info(n)["messages_in"] for n in names}
    b = Component.load(component_path("pinger.wat"), version="b")
    exc = await upgrade_under_traffic(node, names, lambda: root.upgrade(
        "pinger", b, canary=1, probe=SLOW_PROBE, probe_timeout=0.2))
    assert (exc.process, exc.cause) == ("p0", "probe_failed")
    assert exc.report.processes == ()
    for name in names:
        assert await node.call(name, "ping") == "pong"
        assert node.process_info(name)["version"] == "a"
        probe = 1 if name == "p0" else 0
        # Every cast, the probe and the ping were handled: none lost.
        assert node.process_info(name)["messages_in"] == before[name] + CASTS + probe + 1
    assert [r.version for r in await root.which_children()] == ["a"] * 3
    await assert_nothing_left_behind(node, root)


@pytest.mark.parametrize("strategy", ["atomic", "rolling"])
async def test_an_upgrade_past_its_timeout_is_rolled_back(node, strategy):
    """The caller's timeout passes while the canary's probe waits: the change is rolled
    back at once (not when the probe times out), and the caller hears why."""
    root = await start(node, pingers(3))
    b = Component.load(component_path("pinger.wat"), version="b")
    with trio.fail_after(20):  # only a guard: the probe alone would wait 30 s
        with pytest.raises(UpgradeFailed) as info:
            await root.upgrade("pinger", b, canary=1, probe=SLOW_PROBE, probe_timeout=30,
                               strategy=strategy, timeout=0.3)
        assert info.value.cause == "timeout"
        assert info.value.report.processes == ()
        for name in ("p0", "p1", "p2"):
            assert node.process_info(name)["version"] == "a"
            assert await node.call(name, "ping") == "pong"
        assert [r.version for r in await root.which_children()] == ["a"] * 3
    await assert_nothing_left_behind(node, root)


async def test_an_upgrade_whose_caller_gives_up_is_rolled_back(node):
    root = await start(node, pingers(3))
    b = Component.load(component_path("pinger.wat"), version="b")
    with trio.move_on_after(0.3) as waited:
        await root.upgrade("pinger", b, canary=1, probe=SLOW_PROBE, probe_timeout=30)
    assert waited.cancelled_caught
    with trio.fail_after(20):  # a guard: the supervisor answers once the change is undone
        assert (await root.count_children())["active"] == 3
    for name in ("p0", "p1", "p2"):
        assert node.process_info(name)["version"] == "a"
        assert await node.call(name, "ping") == "pong"
    assert [r.version for r in await root.which_children()] == ["a"] * 3
    await assert_nothing_left_behind(node, root)


async def test_an_upgrade_request_queued_behind_a_busy_supervisor_whose_caller_left(node):
    """The request reaches the supervisor after its caller gave up: it is refused, and
    nothing changes."""
    root = await start(node, [*pingers(1), *counters([1])])
    b = Component.load(component_path("pinger.wat"), version="b")
    async with trio.open_nursery() as nursery:
        # Keeps the supervisor busy for 0.3 s: an upgrade whose probe waits, then times out.
        async def busy() -> None:
            with pytest.raises(UpgradeFailed):
                await root.upgrade("pinger", b, canary=1, probe=SLOW_PROBE, probe_timeout=0.3)

        nursery.start_soon(busy)
        await trio.sleep(0.05)
        with trio.move_on_after(0.05):
            await root.upgrade("counter", component_path("counter_v2.wat"), version="v2")
    assert node.process_info("c0")["version"] == "v1"
    assert await node.call("c0", "get") == 1
    await assert_nothing_left_behind(node, root)


async def test_a_downgrade_with_no_earlier_version_changes_nothing(node):
    root = await start(node, counters([3, 4]))
    with pytest.raises(supervisors.SupervisorError, match="no earlier version"):
        await root.downgrade("counter")
    assert [await node.call(n, "get") for n in ("c0", "c1")] == [3, 4]
    await assert_nothing_left_behind(node, root)


@pytest.mark.parametrize("strategy", ["atomic", "rolling"])
async def test_a_process_another_change_holds_suspended_is_busy_not_a_crash(node, strategy):
    """Someone else (here the low-level API) holds c1 suspended: the supervised change
    fails with ``busy`` and undoes itself; the tree stays up, and c1 goes on once its
    holder resumes it."""
    root = await start(node, counters([1, 2, 3]))
    await node.suspend("c1")
    node.send_nowait("c1", 10)  # queues while c1 is held
    try:
        with pytest.raises(UpgradeFailed) as info:
            await root.upgrade("counter", component_path("counter_v2.wat"), version="v2", strategy=strategy)
        assert (info.value.process, info.value.cause) == ("c1", "busy")
        assert node.process_info("c0")["version"] == ("v2" if strategy == "rolling" else "v1")
        assert node.process_info("c2")["version"] == "v1"
    finally:
        node.resume("c1")
    assert await node.call("c1", "get") == 12
    assert node.process_info("c1")["version"] == "v1"
    assert root.alive
    await assert_nothing_left_behind(node, root)
