"""Hot deployment: the supervised code change and its guarantees."""

import pytest
import trio
import trio.testing

import supervisors
from airssys_actors import (
    Actor, Capabilities, Component, ComponentWorldMismatch, Kind, Limits,
    UpgradeFailed,
)
from supervisors import Child, Supervisor, SupervisorError

from ..conftest import component_path
import trio.lowlevel

V1 = component_path("counter.wat")
V2 = component_path("counter_v2.wat")


def counters(n=1, **kw):
    return [Child(f"c{i}", Component.load(V1, version="v1"), args={"start": 10 * i}, name=f"c{i}", **kw)
            for i in range(n)]


async def start(node, children, **kw):
    return await supervisors.start(node, Supervisor("root", children=children, **kw))


async def test_v1_to_v2_migrates_state_under_the_same_pid_and_name(node):
    root = await start(node, counters(1))
    pid = await root.child_pid("c0")
    assert await node.call("c0", 41) == 41
    report = await root.upgrade("c0", V2, version="v2")
    (p,) = report.processes
    assert (p.pid, p.child, p.from_version, p.to_version) == (pid, "c0", "v1", "v2")
    assert p.pause > 0 and p.state_bytes > 0
    assert await root.child_pid("c0") == pid and node.whereis("c0") == pid
    assert await node.call("c0", "stats") == {"count": 41, "updates": 0, "version": "v2"}
    assert await node.call("c0", "incr") == 42
    assert node.process_info(pid)["version"] == "v2"


async def test_a_later_crash_restarts_the_new_version(node):
    root = await start(node, counters(1))
    await root.upgrade("c0", V2, version="v2")
    await node.send("c0", "not a number")  # crash
    await trio.testing.wait_all_tasks_blocked()
    assert (await root.which_children())[0].version == "v2"
    assert (await node.call("c0", "stats"))["version"] == "v2"


async def test_downgrade_goes_back_through_the_same_protocol(node):
    root = await start(node, counters(1))
    await node.call("c0", 5)
    await root.upgrade("c0", V2, version="v2")
    await node.call("c0", "incr")
    report = await root.downgrade("c0")
    assert [(p.from_version, p.to_version) for p in report.processes] == [("v2", "v1")]
    assert await node.call("c0", "get") == 6  # v1 took the v2 state (OTP's {down, Vsn})
    assert (await root.which_children())[0].version == "v1"
    with pytest.raises(SupervisorError, match="no earlier version"):
        await root.downgrade("c0")


async def test_upgrade_every_process_of_a_component_across_nested_and_dynamic_children(node):
    tree = Supervisor("root", children=[
        *counters(2),
        Supervisor("nested", children=[Child("deep", Component.load(V1, version="v1"), name="deep")]),
        Supervisor("pool", strategy="simple_one_for_one", children=[Child("t", Component.load(V1, version="v1"))]),
        Child("other", component_path("echo.wat"), name="other"),
    ])
    root = await supervisors.start(node, tree)
    pool = await root.child("pool")
    dyn = [await pool.start_child(args={"start": 100 + i}) for i in range(3)]
    report = await root.upgrade("counter", V2, version="v2")
    assert len(report.processes) == 6
    assert {p.child for p in report.processes} >= {"c0", "c1", "deep"}
    for pid in dyn:
        assert (await node.call(pid, "stats"))["version"] == "v2"
    assert node.process_info("other")["component"] == "echo"
    # New dynamic children start with the new version too.
    fresh = await pool.start_child(args={"start": 1})
    assert (await node.call(fresh, "stats"))["version"] == "v2"


@pytest.mark.parametrize("bad, cause", [
    ("counter_reject.wat", "error"),
    ("counter_trap.wat", "trap"),
])
async def test_failed_upgrade_rolls_back_with_identical_state(node, bad, cause):
    root = await start(node, counters(3))
    for i in range(3):
        await node.call(f"c{i}", 7)
    pids = [await root.child_pid(f"c{i}") for i in range(3)]
    with pytest.raises(UpgradeFailed) as info:
        await root.upgrade("counter", component_path(bad), version="bad")
    assert info.value.cause == cause and info.value.process == "c0"
    assert info.value.report.processes == ()
    if cause == "error":
        assert "refusing state from v1" in info.value.detail
    for i in range(3):
        assert await node.call(f"c{i}", "get") == 10 * i + 7
        assert node.process_info(f"c{i}")["version"] == "v1"
    assert [await root.child_pid(f"c{i}") for i in range(3)] == pids
    assert [r.version for r in await root.which_children()] == ["v1"] * 3


async def test_all_or_nothing_when_one_of_several_fails(node):
    # c2 runs under the name "counter" but its state (an echo's empty snapshot) is not one
    # v2 accepts: the change fails there, after c0 and c1 have migrated.
    odd = Component.load(component_path("echo.wat"), name="counter", version="v1")
    root = await start(node, [*counters(2), Child("c2", odd, name="c2")])
    for i in range(2):
        await node.call(f"c{i}", 1)
    with pytest.raises(UpgradeFailed) as info:
        await root.upgrade("counter", V2, version="v2")
    assert info.value.process == "c2"
    for i in range(2):
        assert node.process_info(f"c{i}")["version"] == "v1"  # rolled back
        assert await node.call(f"c{i}", "get") == 10 * i + 1


async def test_rolling_stops_at_the_first_failure_and_keeps_what_is_done(node):
    root = await start(node, counters(3))
    await root.upgrade("c1", Component.load(component_path("echo.wat"), name="counter", version="odd"))
    with pytest.raises(UpgradeFailed) as info:
        await root.upgrade("counter", V2, version="v2", strategy="rolling")
    assert [p.child for p in info.value.report.processes] == ["c0"]
    assert node.process_info("c0")["version"] == "v2"
    assert node.process_info("c1")["version"] == "odd"
    assert node.process_info("c2")["version"] == "v1"
    assert [r.version for r in await root.which_children()] == ["v2", "odd", "v1"]


async def test_canary_checks_a_probe_before_the_rest(node):
    root = await start(node, counters(4))
    report = await root.upgrade("counter", V2, version="v2", canary=1, probe="stats")
    assert len(report.processes) == 4
    assert report.processes[0].child == "c0"


async def test_failing_canary_is_changed_back(node):
    root = await start(node, counters(3))
    await node.call("c0", 3)
    with pytest.raises(UpgradeFailed) as info:
        # v2 cannot answer this probe: it crashes the canary on an unknown message.
        await root.upgrade("counter", V2, version="v2", canary=1, probe="no such command")
    assert info.value.cause == "probe_failed"
    await trio.testing.wait_all_tasks_blocked()
    for i in range(3):
        assert node.process_info(f"c{i}")["version"] == "v1"
    assert [r.version for r in await root.which_children()] == ["v1"] * 3


async def test_wrong_components_fail_before_anything_is_suspended(node):
    root = await start(node, counters(1))
    with pytest.raises(ComponentWorldMismatch):
        await root.upgrade("c0", component_path("notaworld.wat"))
    with pytest.raises(SupervisorError, match="no running process"):
        await root.upgrade("nothing-here", V2)
    assert await node.call("c0", "get") == 0


async def test_call_in_flight_during_an_upgrade_is_answered(node):
    root = await start(node, counters(1))
    results = []

    async def caller(i):
        results.append(await node.call("c0", 1, timeout=10))

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(caller, i)
        await trio.lowlevel.checkpoint()
        await root.upgrade("c0", V2, version="v2")
    assert sorted(results) == list(range(1, 51))


class Collector(Actor):
    """Casts (sender, seq) pairs to an echo guest and collects them as they come back."""

    async def init(self, ctx, args):
        self.target, self.count, self.got = args["target"], args["count"], []

    async def handle(self, ctx, msg):
        if msg.kind == Kind.CALL and msg.value == "go":
            for i in range(self.count):
                await ctx.send(self.target, [str(ctx.pid), i])
                if i % 100 == 0:
                    await trio.lowlevel.checkpoint()
            return "sent"
        if msg.kind == Kind.CALL and msg.value == "got":
            return self.got
        if msg.kind == Kind.CAST:
            self.got.append(msg.value[1])
        return None


async def test_no_message_lost_duplicated_or_reordered_across_repeated_upgrades(node):
    echo_v = [Component.load(component_path("echo.wat"), version=f"e{i}") for i in range(2)]
    root = await start(node, [Child("echo", echo_v[0], name="echo", capabilities=Capabilities(send=["*"]),
                                    mailbox_capacity=256)])
    senders = [await node.spawn(Collector, args={"target": "echo", "count": 3000}, mailbox_capacity=10_000)
               for _ in range(4)]
    upgrades = 0
    async with trio.open_nursery() as nursery:
        for s in senders:
            nursery.start_soon(node.call, s, "go", 60)

        async def upgrader():
            nonlocal upgrades
            for i in range(20):
                await root.upgrade("echo", echo_v[(i + 1) % 2])
                upgrades += 1
                await trio.sleep(0.005)

        nursery.start_soon(upgrader)
    await trio.sleep(0.2)
    assert upgrades == 20
    for s in senders:
        assert await node.call(s, "got") == list(range(3000))
    assert not [d for d in node.dead_letters() if d.to == "echo"]


async def test_counter_total_is_exact_across_upgrades_under_load(node):
    root = await start(node, counters(1))
    total = 0
    async with trio.open_nursery() as nursery:
        async def sender(k):
            nonlocal total
            for _ in range(1000):
                await node.send("c0", k)
                total += k

        for k in (1, 2, 3):
            nursery.start_soon(sender, k)

        async def upgrader():
            for i in range(10):
                await root.upgrade("c0", V2 if i % 2 == 0 else V1, version=f"x{i}")
                await trio.sleep(0.002)

        nursery.start_soon(upgrader)
    assert await node.call("c0", "get") == total == 6000


async def test_a_process_killed_during_the_upgrade_is_restarted_like_any_crash(node):
    root = await start(node, [
        *counters(1),
        Child("slow", Component.load(component_path("crasher.wat"), name="counter", version="v1"), name="slow",
              threaded=True, limits=Limits(fuel=None, deadline=None)),
    ])
    slow = await root.child_pid("slow")
    await node.send("slow", "loop")  # busy: the upgrade waits for this handler to finish
    await trio.sleep(0.05)

    async def killer():
        await trio.sleep(0.1)
        node.kill(slow)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(killer)
        with pytest.raises(UpgradeFailed) as info:
            await root.upgrade("counter", V2, version="v2")
    assert info.value.cause == "noproc"
    await trio.testing.wait_all_tasks_blocked()
    assert node.process_info("c0")["version"] == "v1"  # all-or-nothing
    new_slow = await root.child_pid("slow")
    assert new_slow not in (None, slow)
    assert (await root.which_children())[1].restarts == 1


async def test_target_by_nested_child_id_or_registered_name(node):
    tree = Supervisor("root", children=[
        Supervisor("inner", children=[Child("deep", Component.load(V1, version="v1"), name="deep/1")]),
    ])
    root = await supervisors.start(node, tree)
    report = await root.upgrade("deep", V2, version="v2")
    assert [p.child for p in report.processes] == ["deep"]
    report = await root.upgrade("deep/1", V1, version="v1b")
    assert [p.to_version for p in report.processes] == ["v1b"]
    with pytest.raises(SupervisorError, match="is a supervisor"):
        await root.upgrade("inner", V2)


async def test_canaries_go_back_when_the_rest_of_an_atomic_change_fails(node):
    odd = Component.load(component_path("echo.wat"), name="counter", version="v1")
    root = await start(node, [*counters(2), Child("c2", odd, name="c2")])
    await node.call("c0", 5)
    with pytest.raises(UpgradeFailed) as info:
        await root.upgrade("counter", V2, version="v2", canary=1, probe="stats")
    assert info.value.process == "c2"
    assert [node.process_info(f"c{i}")["version"] for i in range(3)] == ["v1", "v1", "v1"]
    assert await node.call("c0", "get") == 5


async def test_a_process_that_dies_mid_change_is_not_committed(node):
    slow = Component.load(component_path("crasher.wat"), name="counter", version="v1")
    root = await start(node, [*counters(1), Child("slow", slow, name="slow", threaded=True,
                                                   limits=Limits(fuel=None, deadline=None))])
    c0 = await root.child_pid("c0")
    await node.send("slow", ["spin", 2_000_000_000])

    async def killer():
        await trio.sleep(0.05)
        node.kill(c0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(killer)
        with pytest.raises(UpgradeFailed) as info:
            # echo accepts any state, so only the death of c0 can make this change fail.
            await root.upgrade("counter", component_path("echo.wat"), version="v2")
    assert info.value.cause == "noproc" and info.value.process == "c0"
    await trio.testing.wait_all_tasks_blocked()
    assert [r.version for r in await root.which_children()] == ["v1", "v1"]
