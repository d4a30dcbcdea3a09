"""What a node does behind the scenes: call timeouts on the timer heap, dead instances
released when the node is idle, exit signals reaching processes that have no cancel
scope, and the one-waiter wakeups of mailboxes and calls."""

import pytest
import trio
import trio.testing

from airssys_actors import Actor, CallFailed, CallTimeout, Node, SpawnFailed
from airssys_actors._reaper import Reaper
from airssys_actors._wakeup import OneShot, Wakeup

from ..conftest import component_path
from .actors import Echo, FailingInit, Worker


async def test_calls_leave_no_timers_behind(node):
    pid = await node.spawn(Echo)
    for i in range(2000):
        assert await node.call(pid, i) == i
    assert len(node.timers) == 0
    # Cancelled timeouts are dropped from the heap, not kept until their deadline.
    assert len(node.timers._heap) <= 2 * 257
    assert node.statistics().pending_calls == 0


async def test_call_times_out_while_waiting_for_room_in_a_full_mailbox(node):
    pid = await node.spawn(Worker, mailbox_capacity=1)
    node.send_nowait(pid, ["sleep", 10])  # taken at once: the worker is busy
    await trio.testing.wait_all_tasks_blocked()
    node.send_nowait(pid, "filler")  # the mailbox is full now
    with trio.fail_after(2):
        with pytest.raises(CallTimeout):
            await node.call(pid, "ping", timeout=0.05)
    assert node.statistics().pending_calls == 0


async def test_a_timed_out_call_answered_later_is_a_late_reply(node):
    pid = await node.spawn(Worker)
    with pytest.raises(CallTimeout):
        await node.call(pid, ["sleep", 0.1], timeout=0.02)
    await trio.sleep(0.2)
    assert [d.reason for d in node.dead_letters()] == ["late_reply"]
    assert len(node.timers) == 0


async def test_a_dead_instance_is_released_when_the_node_is_idle(node):
    pid = await node.spawn(component_path("crasher.wat"))
    proc = node._processes[pid]
    instance = proc.behaviour.instance
    node.kill(pid)
    await node.wait(pid)
    assert instance.closed  # it can never be called again, released or not
    await trio.testing.wait_all_tasks_blocked()
    await trio.testing.wait_all_tasks_blocked()
    assert node.reaper.pending == 0
    assert instance._store is None


async def test_a_busy_node_releases_dead_instances_past_the_backlog():
    released: list[int] = []
    reaper = Reaper(backlog=3)
    for i in range(10):
        reaper.retire(lambda i=i: released.append(i))
    # Three wait for an idle moment; past that, each is released as it is retired.
    assert released == list(range(3, 10))
    assert reaper.pending == 3
    reaper.close()
    assert released == [*list(range(3, 10)), 0, 1, 2]
    reaper.retire(lambda: released.append(10))  # closed: released at once
    assert released[-1] == 10



async def test_a_reaper_that_found_the_node_busy_rests_then_releases_when_idle():
    reaper = Reaper(watch=0.01, rest=0.5)
    released: list[int] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        reaper.retire(lambda: released.append(0))
        end = trio.current_time() + 0.03
        while trio.current_time() < end:  # busy past the watch window: it gives up looking
            await trio.lowlevel.checkpoint()
        await trio.sleep(0.02)  # idle, but it is resting: nothing released yet
        assert released == [] and reaper.pending == 1
        await trio.sleep(0.7)  # rested, looked again, found the node idle
        assert released == [0] and reaper.pending == 0
        nursery.cancel_scope.cancel()

async def test_leaving_the_node_releases_every_dead_instance():
    async with Node() as node:
        pids = [await node.spawn(component_path("crasher.wat")) for _ in range(5)]
        instances = [node._processes[p].behaviour.instance for p in pids]
    assert node.reaper.pending == 0
    assert all(i._store is None for i in instances)


async def test_exit_signals_reach_an_inline_guest_waiting_for_mail(node):
    pid = await node.spawn(component_path("echo.wat"))
    assert node._processes[pid]._scope is None  # no scope: woken through its mailbox
    await trio.testing.wait_all_tasks_blocked()
    await node.exit(pid, "custom")
    with trio.fail_after(1):
        reason = await node.wait(pid)
    assert (reason.kind, reason.detail) == ("exit", "custom")


async def test_kill_reaches_a_suspended_inline_guest(node):
    pid = await node.spawn(component_path("echo.wat"), name="e")
    await node.suspend(pid)
    node.send_nowait("e", "queued")
    node.kill(pid)
    with trio.fail_after(1):
        assert (await node.wait(pid)).kind == "killed"
    assert [d.value for d in node.dead_letters()] == ["queued"]


@pytest.mark.parametrize("kind", ["python", "wat"])
async def test_a_crash_and_respawn_leave_no_reference_cycles(node, kind):
    """Everything a crashed process and its failed call leave behind is freed by reference
    counting, so crashes and restarts do not feed the cyclic garbage collector."""
    import gc

    from airssys_actors import CallFailed, Component

    component = Worker if kind == "python" else Component.load(component_path("crasher.wat"))

    async def crash_and_respawn() -> None:
        await node.spawn(component, name="victim", mailbox="keep")
        with pytest.raises(CallFailed):
            await node.call("victim", "crash")
        await trio.testing.wait_all_tasks_blocked()

    await crash_and_respawn()  # warm up: first-time imports, caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            await crash_and_respawn()
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == [], left


async def test_a_wakeup_wakes_its_one_waiter_and_survives_cancellation():
    wakeup = Wakeup()
    woken: list[str] = []

    async def waiter(name: str) -> None:
        await wakeup.wait()
        woken.append(name)

    wakeup.wake()  # nobody waiting: lost, as a mailbox's wake is when nothing is parked
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "first")
        await trio.testing.wait_all_tasks_blocked()
        assert wakeup.waiting
        with pytest.raises(RuntimeError):
            await wakeup.wait()  # one waiter at a time
        wakeup.wake()
    assert woken == ["first"] and not wakeup.waiting

    with trio.move_on_after(0.01) as scope:
        await wakeup.wait()
    assert scope.cancelled_caught and not wakeup.waiting  # a cancelled wait leaves no waiter
    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter, "second")
        await trio.testing.wait_all_tasks_blocked()
        wakeup.wake()
    assert woken == ["first", "second"]


async def test_a_one_shot_fired_before_the_wait_returns_at_once():
    shot = OneShot()
    shot.fire()
    with trio.fail_after(1):
        await shot.wait()
    assert shot.fired


async def test_a_process_restarted_under_its_parked_name_runs_in_the_dead_ones_task(node):
    crasher = component_path("crasher.wat")
    await node.spawn(crasher, name="w", mailbox="keep")
    tasks = len(node._nursery.child_tasks)
    with pytest.raises(CallFailed):
        await node.call("w", "crash")
    await trio.testing.wait_all_tasks_blocked()
    # Its mailbox is parked under the name, and its task waits for the next process.
    assert node.is_parked("w") and "w" in node._heirs
    assert len(node._nursery.child_tasks) == tasks
    await node.send("w", "ping")  # queued in the parked mailbox
    successor = await node.spawn(crasher, name="w", mailbox="keep")
    assert "w" not in node._heirs
    assert await node.call("w", "ping") == "pong"
    assert node.process_info(successor)["messages_in"] == 2  # the queued ping, then this call
    assert len(node._nursery.child_tasks) == tasks  # no task ended, none started
    node.kill(successor)
    await node.wait(successor)
    await trio.testing.wait_all_tasks_blocked()
    assert "w" in node._heirs
    node.release_name("w")  # nobody will take the name: the waiting task ends
    await trio.testing.wait_all_tasks_blocked()
    assert "w" not in node._heirs and len(node._nursery.child_tasks) == tasks - 1


async def test_a_python_actor_restarted_under_its_parked_name_runs_in_the_dead_ones_task(node):
    await node.spawn(Worker, name="w", mailbox="keep")
    tasks = len(node._nursery.child_tasks)
    with pytest.raises(CallFailed):
        await node.call("w", "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert "w" in node._heirs and len(node._nursery.child_tasks) == tasks
    # A different actor under the name takes the task over too, once its init ran.
    successor = await node.spawn(Echo, name="w", mailbox="keep")
    assert node.process_info(successor)["name"] == "w" and "w" not in node._heirs
    assert await node.call("w", "hello") == "hello"
    assert len(node._nursery.child_tasks) == tasks


async def test_an_init_that_fails_in_a_handed_over_task_fails_the_spawn_and_the_task_waits_on(node):
    await node.spawn(Worker, name="w", mailbox="keep")
    with pytest.raises(CallFailed):
        await node.call("w", "crash")
    await trio.testing.wait_all_tasks_blocked()
    tasks = len(node._nursery.child_tasks)
    with pytest.raises(SpawnFailed) as info:
        await node.spawn(FailingInit, name="w", mailbox="keep")
    assert "bad config" in str(info.value.reason)
    await trio.testing.wait_all_tasks_blocked()
    assert node.is_parked("w") and "w" in node._heirs and len(node._nursery.child_tasks) == tasks
    await node.spawn(Echo, name="w", mailbox="keep")
    assert await node.call("w", "again") == "again"


async def test_a_spawn_cancelled_while_the_handed_over_init_runs_stops_that_process(node):
    await node.spawn(Worker, name="w", mailbox="keep")
    with pytest.raises(CallFailed):
        await node.call("w", "crash")
    await trio.testing.wait_all_tasks_blocked()
    with trio.move_on_after(0.05) as scope:
        await node.spawn(SlowInit, name="w", mailbox="keep")
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert node.whereis("w") is None and node.is_parked("w")  # killed; the name waits on


class SlowInit(Actor):
    async def init(self, ctx, args):
        await trio.sleep(10)
