"""The runtime's code change below the supervised one: suspend, prepare, swap, resume."""

import pytest
import trio

from airssys_actors import Component, UpgradeFailed

from ..conftest import component_path
from ..runtime.actors import Worker
import itertools

V1 = component_path("counter.wat")
V2 = component_path("counter_v2.wat")


async def counter(node, start=0):
    return await node.spawn(Component.load(V1, version="v1"), args={"start": start})


async def test_an_idle_process_takes_nothing_until_resumed(node):
    pid = await counter(node)
    await node.suspend(pid)
    for k in (1, 2, 3):
        await node.send(pid, k)
    await trio.sleep(0.01)
    info = node.process_info(pid)
    assert info["suspended"] and info["messages_in"] == 0
    node.resume(pid)
    assert await node.call(pid, "get") == 6


async def test_a_cancelled_suspend_leaves_an_idle_process_running(node):
    pid = await counter(node)
    with trio.CancelScope() as scope:
        scope.cancel()
        await node.suspend(pid)
    assert scope.cancelled_caught
    assert not node.process_info(pid)["suspended"]
    assert await node.call(pid, 1, timeout=1) == 1
    await node.suspend(pid)  # and it can be suspended again
    node.resume(pid)


async def test_a_cancelled_suspend_leaves_a_busy_process_running(node):
    worker = await node.spawn(Worker)
    await node.send(worker, ["sleep", 0.2])
    await trio.sleep(0.01)  # it is handling that message now
    with trio.move_on_after(0.05) as scope:
        await node.suspend(worker)
    assert scope.cancelled_caught
    # Not left suspended once its message is done: it answers the next one.
    assert await node.call(worker, "back", timeout=1) == "back"


async def test_swap_resume_then_announce_and_release(node):
    pid = await counter(node, start=7)
    events = node.subscribe({"upgrade"})
    await node.suspend(pid)
    change = node.prepare_code_change(pid, Component.load(V2, version="v2"))
    old = change.behaviour.instance
    # The new instance serves the same process through the same host functions.
    assert old.host is not None and change.new_instance.host is old.host
    change.swap()
    assert change.behaviour.instance is change.new_instance and change.old_instance is old
    node.resume(pid)
    assert events.get_nowait() is None  # the event is the caller's to emit, after the resume
    change.announce()
    change.announce()
    change.release_old()
    assert old.host is None and change.old_instance is None
    (event,) = events.drain()
    assert (event.pid, event.version, event.data["from_version"]) == (pid, "v2", "v1")
    assert await node.call(pid, "stats") == {"count": 7, "updates": 0, "version": "v2"}
    with pytest.raises(RuntimeError, match="already committed"):
        change.commit()


async def test_commit_still_does_it_all_and_a_rollback_announces_nothing(node):
    pid = await counter(node, start=3)
    events = node.subscribe({"upgrade"})
    await node.suspend(pid)
    dropped = node.prepare_code_change(pid, Component.load(V2, version="v2"))
    dropped.rollback()
    dropped.announce()
    assert dropped.new_instance.host is None  # closed
    change = node.prepare_code_change(pid, Component.load(V2, version="v2"))
    old = change.behaviour.instance
    change.commit()
    node.resume(pid)
    assert old.host is None
    assert [e.version for e in events.drain()] == ["v2"]
    assert await node.call(pid, "incr") == 4


async def test_a_long_atomic_change_lets_the_rest_of_the_node_run(node):
    import supervisors
    from supervisors import Child, Supervisor

    blob = Component.load(component_path("blob.wat"), version="v1")
    root = await supervisors.start(node, Supervisor("root", children=[
        Child(f"b{i}", blob, args={"size": 100}) for i in range(400)]))
    bystander = await node.spawn(blob, args={"size": 100})
    answered: list[float] = []
    done = trio.Event()

    async def caller():
        while not done.is_set():
            await node.call(bystander, "ping")
            answered.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await trio.sleep(0.01)
        report = await root.upgrade("blob", blob, version="v2", strategy="atomic")
        done.set()
    assert len(report.processes) == 400
    # Every process paused for about the whole change, but the node was held for a
    # slice at a time: the bystander's calls went on meanwhile.
    longest = max(b - a for a, b in itertools.pairwise(answered))
    assert longest < report.seconds / 2, (longest, report.seconds)


async def test_upgrade_arguments_of_a_large_state_are_freed_at_once_or_with_the_old_instance(node):
    from airssys_actors._host._instance import SPENT_MIN

    blob = Component.load(component_path("blob.wat"), version="v1")
    pid = await node.spawn(blob, args={"size": SPENT_MIN})
    v2 = Component.load(component_path("blob.wat"), version="v2")
    await node.suspend(pid)
    at_once = node.prepare_code_change(pid, v2)
    assert at_once.spent == []  # freed before it returns
    at_once.rollback()
    kept = node.prepare_code_change(pid, v2, defer_free=True)
    assert len(kept.spent) == 1  # upgrade's arguments
    kept.rollback()
    assert kept.spent == []
    change = node.prepare_code_change(pid, v2, defer_free=True)
    change.swap()
    node.resume(pid)
    change.release_old()
    assert change.spent == []
    assert await node.call(pid, "size") == SPENT_MIN


async def test_a_preloaded_instance_is_made_before_the_suspension_and_taken_over(node):
    pid = await counter(node, start=5)
    v2 = Component.load(V2, version="v2")
    preloaded = node.preload_code_change(pid, v2)
    new = preloaded.instance
    assert new is not None and new.host is node._processes[pid].behaviour.instance.host
    assert await node.call(pid, "incr") == 6  # not suspended: v1 still serves meanwhile
    with pytest.raises(ValueError, match="another process or component"):
        node.prepare_code_change(pid, Component.load(V1, version="v1b"), preloaded=preloaded)
    await node.suspend(pid)
    change = node.prepare_code_change(pid, v2, preloaded=preloaded)
    assert change.new_instance is new and preloaded.instance is None
    preloaded.close()  # the change owns the instance now: nothing to close
    assert new.host is not None
    change.commit()
    node.resume(pid)
    stats = await node.call(pid, "stats")
    assert (stats["count"], stats["version"]) == (6, "v2")


async def test_a_preloaded_instance_no_change_took_is_closed(node):
    pid = await counter(node)
    v2 = Component.load(V2, version="v2")
    unused = node.preload_code_change(pid, v2)
    instance = unused.instance
    unused.close()
    unused.close()
    assert instance.host is None
    with pytest.raises(ValueError, match="already used"):
        node.prepare_code_change(pid, v2, preloaded=unused)
    node.kill(pid)
    await node.wait(pid)
    with pytest.raises(UpgradeFailed) as info:
        node.preload_code_change(pid, v2)
    assert info.value.cause == "noproc"
