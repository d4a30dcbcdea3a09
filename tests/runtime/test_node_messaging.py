import pytest
import trio
import trio.testing

from airssys_actors import (
    CallFailed, CallTimeout, Kind, MailboxFull, MessageTooLarge, NameTaken, Node, NodeClosed,
    NoSuchProcess, Pid, SpawnFailed, UnencodableMessage,
)

from .actors import Echo, FailingInit, Recorder, Worker


async def test_spawn_returns_a_node_qualified_pid(node):
    pid = await node.spawn(Echo)
    assert isinstance(pid, Pid) and pid.node == node.name
    assert Pid.parse(str(pid)) == pid
    assert node.is_alive(pid)


async def test_call_returns_the_reply(node):
    pid = await node.spawn(Echo)
    assert await node.call(pid, {"a": [1, 2.5, b"x", None, True]}) == {"a": [1, 2.5, b"x", None, True]}


async def test_send_by_name_and_by_pid_text_arrive_in_order(node):
    pid = await node.spawn(Recorder, name="rec")
    assert node.whereis("rec") == pid
    for i in range(5):
        await node.send("rec", i)
    node.send_nowait(str(pid), 5)
    assert await node.call("rec", "log") == [["cast", None, i] for i in range(6)]


async def test_unknown_name_or_dead_pid_is_an_error(node):
    with pytest.raises(NoSuchProcess):
        await node.send("nobody", 1)
    pid = await node.spawn(Echo)
    node.kill(pid)
    await node.wait(pid)
    with pytest.raises(NoSuchProcess):
        await node.call(pid, 1)


async def test_names_are_unique_among_live_processes(node):
    await node.spawn(Echo, name="solo")
    with pytest.raises(NameTaken):
        await node.spawn(Echo, name="solo")
    with pytest.raises(ValueError, match="invalid name"):
        await node.spawn(Echo, name="<0.1>")


async def test_name_is_freed_when_the_process_exits(node):
    pid = await node.spawn(Worker, name="w")
    await node.call("w", "stop")
    assert (await node.wait(pid)).kind == "normal"
    assert node.whereis("w") is None
    again = await node.spawn(Worker, name="w")
    assert node.whereis("w") == again


async def test_register_and_unregister(node):
    pid = await node.spawn(Echo)
    node.register("late", pid)
    assert await node.call("late", 3) == 3
    assert node.registered() == {"late": pid}
    node.unregister("late")
    assert node.whereis("late") is None


async def test_unencodable_and_oversized_messages_are_refused(node):
    pid = await node.spawn(Echo)
    with pytest.raises(UnencodableMessage):
        await node.send(pid, object())
    with pytest.raises(MessageTooLarge):
        await node.send(pid, b"x" * (node.max_message + 1))
    assert await node.call(pid, "still alive") == "still alive"


async def test_call_timeout(node):
    pid = await node.spawn(Worker)
    with pytest.raises(CallTimeout):
        await node.call(pid, ["sleep", 10], timeout=0.05)


async def test_call_fails_at_once_when_the_process_dies(node):
    pid = await node.spawn(Worker)
    with trio.fail_after(1):  # far below the call's own timeout
        with pytest.raises(CallFailed) as info:
            await node.call(pid, "crash", timeout=30)
    assert info.value.reason.kind == "error"
    assert "asked to crash" in info.value.reason.detail


async def test_killing_a_process_fails_its_pending_calls_at_once(node):
    pid = await node.spawn(Worker)
    async with trio.open_nursery() as nursery:
        async def caller():
            with pytest.raises(CallFailed) as info:
                await node.call(pid, ["sleep", 30], timeout=60)
            assert info.value.reason.kind == "killed"
        nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        node.kill(pid)


async def test_deferred_reply(node):
    pid = await node.spawn(Worker)
    assert await node.call(pid, ["defer", 0.01]) == "deferred answer"


async def test_failing_init_fails_the_spawn(node):
    with pytest.raises(SpawnFailed) as info:
        await node.spawn(FailingInit, name="broken")
    assert info.value.reason.kind == "error" and "bad config" in info.value.reason.detail
    assert node.whereis("broken") is None


async def test_backpressure_send_waits_and_send_nowait_raises():
    async with Node(mailbox_capacity=2, shutdown_timeout=1) as node:
        pid = await node.spawn(Worker)
        # Keep the worker busy so its mailbox fills up.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.call, pid, ["sleep", 0.2])
            await trio.testing.wait_all_tasks_blocked()
            node.send_nowait(pid, 1)
            node.send_nowait(pid, 2)
            with pytest.raises(MailboxFull):
                node.send_nowait(pid, 3)
            with trio.fail_after(2):
                await node.send(pid, 3)  # waits for room, then delivers


async def test_messages_still_queued_when_a_process_dies_become_dead_letters(node):
    pid = await node.spawn(Worker)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.send, pid, ["sleep", 0.05])
        await trio.testing.wait_all_tasks_blocked()
        await node.send(pid, "crash")
        await node.send(pid, "after the crash")
    await node.wait(pid)
    letters = node.dead_letters()
    values = [(d.value, d.reason.split(":")[0]) for d in letters]
    assert ("crash", "error") in values            # the message it crashed on
    assert ("after the crash", "error") in values  # the one still queued


async def test_events_record_spawn_and_exit_with_reason(node):
    with node.subscribe({"spawn", "exit"}) as sub:
        pid = await node.spawn(Worker, name="evented")
        await node.send(pid, "crash")
        await node.wait(pid)
        events = sub.drain()
    assert [e.kind for e in events] == ["spawn", "exit"]
    assert events[1].pid == pid and events[1].name == "evented"
    assert events[1].reason.startswith("error")
    assert events[0].time <= events[1].time


async def test_node_refuses_work_after_it_stopped():
    node = Node()
    async with node:
        pass
    with pytest.raises(NodeClosed):
        await node.spawn(Echo)


async def test_leaving_the_node_stops_processes_in_reverse_start_order():
    order = []
    async with Node() as node:
        pids = [await node.spawn(Echo) for _ in range(4)]
        sub = node.subscribe({"exit"})
    order = [e.pid for e in sub.drain()]
    assert order == list(reversed(pids))


async def test_send_after_delivers_later(node, autojump_clock):
    pid = await node.spawn(Recorder)
    node.send_after(pid, "later", 5.0)
    await trio.sleep(4.9)
    assert await node.call(pid, "log") == []
    await trio.sleep(0.2)
    assert await node.call(pid, "log") == [["cast", None, "later"]]


async def test_cancelled_timer_never_fires(node, autojump_clock):
    pid = await node.spawn(Recorder)
    timer = node.send_after(pid, "never", 1.0)
    assert node.cancel_timer(timer) is True
    assert node.cancel_timer(timer) is False
    await trio.sleep(2)
    assert await node.call(pid, "log") == []


async def test_kind_numbers_match_the_wit_variant():
    assert [k.name.lower() for k in Kind] == ["cast", "call", "reply", "failed", "down", "exit", "timer"]
