"""Every fault kind: the exit reason it gives and the supervisor's reaction."""

import pytest
import trio
import trio.testing

import supervisors
from airssys_actors import CallFailed, NoSuchProcess, SpawnFailed
from airssys_actors.faults import KINDS, ChaosScheduler, chaos
from supervisors import Child, Supervisor

from ..conftest import component_path
from .actors import Echo


async def supervised_echo(node, name="w"):
    root = await supervisors.start(node, Supervisor("root", max_restarts=100, within=1,
                                                    children=[Child(name, component_path("echo.wat"), name=name)]))
    return root


@pytest.mark.parametrize("kind, reason", [
    ("trap", "trap"), ("fuel", "out_of_fuel"), ("deadline", "deadline"), ("memory", "memory_limit"),
])
async def test_message_faults_end_the_process_with_the_real_reason_and_it_is_restarted(node, kind, reason):
    root = await supervised_echo(node)
    old = await root.child_pid("w")
    node.faults.inject("w", kind)
    with node.subscribe({"restart"}) as sub:
        with pytest.raises(CallFailed) as info:
            await node.call("w", "the message it dies on")
        assert info.value.reason.kind == reason
        event = await sub.wait_for(lambda e: True)
    assert event.reason.startswith(reason)
    assert await root.child_pid("w") != old
    assert await node.call("w", "back") == "back"
    assert node.dead_letters()[-1].value == "the message it dies on"


async def test_real_fuel_and_deadline_come_from_the_guest_not_a_simulation(node):
    await supervised_echo(node)
    node.faults.exhaust_fuel("w")
    with pytest.raises(CallFailed) as info:
        await node.call("w", 1)
    assert "fuel consumed by WebAssembly" in info.value.reason.detail  # wasmtime's own trap text


async def test_python_actors_get_the_same_reasons(node):
    pid = await node.spawn(Echo)
    node.faults.stall(pid)
    with pytest.raises(CallFailed) as info:
        await node.call(pid, 1)
    assert info.value.reason.kind == "deadline"


async def test_kill(node):
    root = await supervised_echo(node)
    old = await root.child_pid("w")
    node.faults.kill("w")
    assert (await node.wait(old)).kind == "killed"
    await trio.testing.wait_all_tasks_blocked()
    assert await root.child_pid("w") not in (None, old)


async def test_init_fault_fails_the_next_restart_and_the_supervisor_retries(node):
    root = await supervised_echo(node)
    with node.subscribe({"exit", "restart"}) as sub:
        node.faults.inject("w", "init")  # kills it, and its restart fails init once
        await trio.testing.wait_all_tasks_blocked()
        events = [(e.kind, e.reason) for e in sub.drain()]
    assert ("exit", "killed") in events
    assert ("exit", "error: injected fault: init failed") in events
    assert events[-1][0] == "restart"
    assert await node.call("w", "up") == "up"
    assert (await root.which_children())[0].restarts == 1


async def test_fail_next_init_on_a_plain_spawn(node):
    node.faults.fail_next_init("x")
    with pytest.raises(SpawnFailed, match="injected fault: init failed"):
        await node.spawn(Echo, name="x")
    assert await node.call(await node.spawn(Echo, name="x"), 1) == 1


async def test_dropped_messages_are_dead_letters_and_dropped_calls_fail_at_once(node):
    pid = await node.spawn(Echo, name="d")
    node.faults.drop("d", count=2)
    await node.send("d", "lost cast")
    with trio.fail_after(1):
        with pytest.raises(CallFailed) as info:
            await node.call("d", "lost call", timeout=30)
    assert info.value.reason.kind == "noconnection"
    assert await node.call("d", "delivered") == "delivered"
    assert [d.value for d in node.dead_letters()] == ["lost cast", "lost call"]
    assert node.is_alive(pid)


async def test_delayed_messages_arrive_late_and_in_order(node, autojump_clock):
    pid = await node.spawn(Echo)
    node.faults.delay(pid, 2.0, count=1)
    start = trio.current_time()
    assert await node.call(pid, "late") == "late"
    assert trio.current_time() - start >= 2.0
    start = trio.current_time()
    assert await node.call(pid, "on time") == "on time"
    assert trio.current_time() - start < 0.1


async def test_faults_on_unknown_targets(node):
    with pytest.raises(NoSuchProcess):
        node.faults.trap_next("ghost")
    with pytest.raises(ValueError, match="unknown fault"):
        node.faults.inject(await node.spawn(Echo), "meteor")


async def test_chaos_is_reproducible_from_its_seed(node):
    for i in range(5):
        await node.spawn(Echo, name=f"workers/{i}")
    a = ChaosScheduler(node, "workers/*", rate=10, seed=42, mix={"delay": 1, "drop": 1})
    b = ChaosScheduler(node, "workers/*", rate=10, seed=42, mix={"delay": 1, "drop": 1})
    seq_a = [(i.kind, i.target) for i in (a.step() for _ in range(20)) if i]
    seq_b = [(i.kind, i.target) for i in (b.step() for _ in range(20)) if i]
    assert seq_a == seq_b and len(seq_a) == 20
    assert len({t for _, t in seq_a}) > 1


async def test_chaos_pattern_does_not_match_siblings(node):
    await node.spawn(Echo, name="a/1")
    await node.spawn(Echo, name="ab")
    scheduler = ChaosScheduler(node, "a/*", rate=1)
    assert scheduler.targets() == ["a/1"]


async def test_chaos_under_supervision_loses_nothing(node):
    names = [f"workers/{i}" for i in range(8)]
    root = await supervisors.start(node, Supervisor("root", max_restarts=10_000, within=1, children=[
        Child(n.replace("/", "-"), component_path("echo.wat"), name=n) for n in names
    ]))
    sent = answered = errors = 0
    async with chaos(node, "workers/*", rate=200, seed=3, delay=0.01) as scheduler:
        for i in range(600):
            target = names[i % len(names)]
            sent += 1
            try:
                assert await node.call(target, i, timeout=5) == i
                answered += 1
            except (CallFailed, NoSuchProcess):
                errors += 1
            if i % 50 == 0:
                await trio.sleep(0.01)
    node.faults.clear()  # faults armed but not yet triggered when the chaos stopped
    await trio.sleep(0.05)
    assert sent == answered + errors  # every call answered or failed; none hangs or vanishes
    assert sum(scheduler.counts.values()) > 0
    assert root.alive
    for n in names:
        assert await node.call(n, "alive?") == "alive?"


async def test_clear_disarms_pending_faults(node):
    pid = await node.spawn(Echo, name="c")
    node.faults.trap_next("c")
    node.faults.drop("c", count=5)
    node.faults.fail_next_init("later")
    node.faults.clear()
    assert await node.call("c", 1) == 1
    assert await node.call(await node.spawn(Echo, name="later"), 2) == 2
    assert node.is_alive(pid)


async def test_mailbox_faults_queue_up_instead_of_replacing_each_other(node):
    pid = await node.spawn(Echo)
    node.faults.drop(pid, count=1)
    node.faults.delay(pid, 0.01, count=1)
    await node.send(pid, "dropped")
    assert await node.call(pid, "delayed") == "delayed"
    assert [d.value for d in node.dead_letters()] == ["dropped"]


def test_fault_kinds_are_listed():
    assert set(KINDS) == {"kill", "trap", "fuel", "deadline", "memory", "init", "delay", "drop"}
