import pytest
import trio

from airssys_actors import ActorError, ExitReason, Kind, NoSuchProcess, Pid

from .actors import Recorder, Worker
import trio.lowlevel


async def test_link_propagates_abnormal_exits_both_ways(node):
    a = await node.spawn(Worker)
    b_text = await node.call(a, ["spawn_linked"])
    b = Pid.parse(b_text)
    await node.send(b, "crash")
    reason = await node.wait(a)
    assert reason.kind == "error" and "asked to crash" in reason.detail
    assert not node.is_alive(b)


async def test_normal_exit_does_not_propagate(node):
    a = await node.spawn(Worker)
    b = Pid.parse(await node.call(a, ["spawn_linked"]))
    await node.call(b, "stop")
    assert (await node.wait(b)).kind == "normal"
    assert await node.call(a, "still here") == "still here"


async def test_trapping_exits_turns_signals_into_messages(node):
    watcher = await node.spawn(Recorder, args={"trap_exits": True})
    victim = await node.spawn(Worker)
    # Link from inside the watcher: use a worker that links, then check the watcher's view.
    linker = await node.spawn(Worker, args=None)
    await node.call(linker, ["link", str(victim)])
    await node.exit(linker, "shutdown")  # not trapping: dies, and so does its link partner
    assert (await node.wait(linker)).kind == "shutdown"
    assert (await node.wait(victim)).kind == "shutdown"
    # A trapping process survives and gets the exit as a message.
    await node.exit(watcher, "custom reason")
    log = await node.call(watcher, "log")
    assert log == [["exit", None, ["exit", "custom reason"]]]


async def test_kill_cannot_be_trapped(node):
    watcher = await node.spawn(Recorder, args={"trap_exits": True})
    node.kill(watcher)
    assert await node.wait(watcher) == ExitReason("killed")


async def test_killed_reason_propagates_through_links_as_trappable(node):
    a = await node.spawn(Worker)
    b = Pid.parse(await node.call(a, ["spawn_linked"]))
    node.kill(b)
    assert (await node.wait(a)).kind == "killed"


async def test_monitor_delivers_down_with_the_reason(node):
    watcher = await node.spawn(Worker)
    target = await node.spawn(Worker)
    await node.call(watcher, ["monitor", str(target)])
    await node.send(target, "crash")
    await node.wait(target)
    assert node.is_alive(watcher)  # a monitor never takes the watcher down


async def test_monitor_of_a_dead_process_is_down_noproc_at_once(node):
    watcher = await node.spawn(Recorder)
    target = await node.spawn(Worker)
    node.kill(target)
    await node.wait(target)

    class Monitoring(Recorder):
        async def init(self, ctx, args):
            await super().init(ctx, args)
            self.ref = ctx.monitor(target)

    mon = await node.spawn(Monitoring)
    await trio.lowlevel.checkpoint()
    log = await node.call(mon, "log")
    assert log == [["down", str(target), "noproc"]]
    assert watcher


async def test_down_message_carries_ref_and_reason(node):
    target = await node.spawn(Worker)
    refs = []

    class Monitoring(Recorder):
        async def init(self, ctx, args):
            await super().init(ctx, args)
            refs.append(ctx.monitor(target))

        async def handle(self, ctx, msg):
            if msg.kind == Kind.DOWN:
                self.seen.append(["down-ref", msg.ref])
            return await super().handle(ctx, msg)

    mon = await node.spawn(Monitoring)
    await node.send(target, "crash")
    await node.wait(target)
    log = await node.call(mon, "log")
    assert ["down-ref", refs[0]] in log
    assert log[-1][0] == "down" and log[-1][2][0] == "error"


async def test_link_to_a_dead_process_exits_with_noproc(node):
    dead = await node.spawn(Worker)
    node.kill(dead)
    await node.wait(dead)
    a = await node.spawn(Worker)
    await node.call(a, ["link", str(dead)])  # handled, then the exit signal takes effect
    assert (await node.wait(a)).kind == "noproc"


async def test_link_and_monitor_need_a_calling_process(node):
    pid = await node.spawn(Worker)
    with pytest.raises(ActorError, match="inside a process"):
        node.link(pid)
    with pytest.raises(ValueError, match="inside a process"):
        await node.spawn(Worker, link=True)


async def test_exit_and_kill_of_unknown_process(node):
    with pytest.raises(NoSuchProcess):
        node.kill(Pid(node.name, 999_999))
    with pytest.raises(NoSuchProcess):
        await node.exit("ghost", "shutdown")


async def test_exit_normal_is_ignored_by_a_process_not_trapping(node):
    pid = await node.spawn(Worker)
    await node.exit(pid, "normal")
    assert await node.call(pid, 1) == 1


async def test_a_process_told_to_exit_takes_no_further_message(node):
    from airssys_actors import Actor

    class Fwd(Actor):
        async def handle(self, ctx, msg):
            await ctx.send("sink", msg.value)

    class Sink(Actor):
        async def handle(self, ctx, msg):
            if msg.value == 0:
                await ctx.node.exit("fwd", "shutdown")

    await node.spawn(Sink, name="sink")
    fwd = await node.spawn(Fwd, name="fwd", mailbox="keep")
    for i in range(5):
        node.send_nowait("fwd", i)
    await node.wait(fwd)
    assert node.dead_letters() == []  # 1..4 stay queued in the kept mailbox
    assert node.is_parked("fwd")
