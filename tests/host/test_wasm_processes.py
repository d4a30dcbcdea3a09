"""End-to-end: real WAT guests running as processes on a node."""

import pytest
import trio

from airssys_actors import (
    CallFailed, Capabilities, Component, ExitReason, Limits, MessageTooLarge, Pid, SpawnFailed,
)

from ..conftest import component_path
from ..runtime.actors import Recorder


@pytest.fixture
def counter():
    return Component.load(component_path("counter.wat"))


async def test_counter_counts_and_snapshots(node, counter):
    pid = await node.spawn(counter, args={"start": 10})
    assert await node.call(pid, 5) == 15
    await node.send(pid, "incr")
    assert await node.call(pid, "get") == 16
    info = node.process_info(pid)
    assert info["component"] == "counter" and info["version"] == counter.version
    assert info["kind"] == "wasm" and info["fuel_used"] > 0


async def test_counter_rejects_bad_args(node, counter):
    with pytest.raises(SpawnFailed) as info:
        await node.spawn(counter, args=[1, 2, 3])
    assert info.value.reason == ExitReason("error", "bad args")


async def test_echo_cast_back_needs_the_send_capability(node):
    echo = component_path("echo.wat")
    rec = await node.spawn(Recorder, name="rec")

    class Caster(Recorder):
        async def init(self, ctx, args):
            await super().init(ctx, args)
            await ctx.send(args, "hello")

    allowed = await node.spawn(echo, capabilities=Capabilities(send=["*"]))
    denied = await node.spawn(echo)
    with node.subscribe({"capability_denied"}) as sub:
        await node.spawn(Caster, args=str(allowed))
        await node.spawn(Caster, args=str(denied))
        event = await sub.wait_for(lambda e: True)
    assert event.pid == denied and event.data["import"] == "send"
    await trio.sleep(0.01)
    assert await node.call(rec, "log") == []
    assert node.is_alive(denied)  # a denied call returns err; it does not crash the guest


async def test_trap_crashes_only_that_process(node):
    crasher = await node.spawn(component_path("crasher.wat"))
    bystander = await node.spawn(component_path("echo.wat"))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "crash")
    assert info.value.reason.kind == "trap"
    assert "unreachable" in info.value.reason.detail
    assert await node.call(bystander, "fine") == "fine"


async def test_guest_error_result_is_reason_error(node):
    crasher = await node.spawn(component_path("crasher.wat"))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "error")
    assert info.value.reason == ExitReason("error", "asked to fail")


@pytest.mark.parametrize("command, reason", [("stop", "normal"), ("shutdown", "shutdown")])
async def test_guest_stop(node, command, reason):
    crasher = await node.spawn(component_path("crasher.wat"))
    assert await node.call(crasher, command) == "stopping"
    assert (await node.wait(crasher)).kind == reason


async def test_guest_stop_with_custom_reason(node):
    crasher = await node.spawn(component_path("crasher.wat"))
    await node.send(crasher, "boom")
    assert await node.wait(crasher) == ExitReason("exit", "boom")


async def test_init_failure_of_a_guest(node):
    with pytest.raises(SpawnFailed) as info:
        await node.spawn(component_path("crasher.wat"), args="fail")
    assert info.value.reason == ExitReason("error", "init failed")


async def test_infinite_loop_hits_the_fuel_limit(node):
    crasher = await node.spawn(component_path("crasher.wat"), limits=Limits(fuel=5_000_000, deadline=None))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "loop")
    assert info.value.reason.kind == "out_of_fuel"


async def test_infinite_loop_hits_the_deadline(node):
    crasher = await node.spawn(component_path("crasher.wat"), limits=Limits(fuel=None, deadline=0.05))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "loop")
    assert info.value.reason.kind == "deadline"


async def test_stack_overflow_is_a_trap_and_the_node_survives(node):
    crasher = await node.spawn(component_path("crasher.wat"))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "recurse")
    assert info.value.reason.kind == "trap"
    assert "stack" in info.value.reason.detail
    assert await node.call(await node.spawn(component_path("echo.wat")), 1) == 1


async def test_unbounded_allocation_stops_at_the_memory_limit(node):
    crasher = await node.spawn(component_path("crasher.wat"), limits=Limits(memory=8 << 20))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "alloc")
    assert info.value.reason.kind in ("trap", "memory_limit")


async def test_reply_over_the_limit_is_refused_not_truncated(node):
    class LongGoodbye(Recorder):
        async def handle(self, ctx, msg):
            ctx.stop("x" * 1500)

    pinger = await node.spawn(component_path("pinger.wat"), limits=Limits(max_message=1000),
                              capabilities=Capabilities(send=["*"]))
    target = await node.spawn(LongGoodbye)
    await node.call(pinger, ["monitor", str(target)])
    await node.send(target, "bye")
    await node.wait(target)
    await trio.sleep(0.01)
    with pytest.raises(MessageTooLarge):
        await node.call(pinger, "last-down")  # the stored reason is longer than its limit
    assert await node.call(pinger, "ping") == "pong"  # the process goes on
    assert [d.reason for d in node.dead_letters()][-1] == "reply_too_large"


async def test_the_receivers_limit_applies_to_incoming_messages(node):
    echo = await node.spawn(component_path("echo.wat"), limits=Limits(max_message=1000))
    with pytest.raises(MessageTooLarge):
        await node.send(echo, b"x" * 2000)
    assert await node.call(echo, "small") == "small"


async def test_gigantic_reply_ends_the_process_with_a_specific_reason(node):
    crasher = await node.spawn(component_path("crasher.wat"))
    bystander = await node.spawn(component_path("echo.wat"))
    with pytest.raises(CallFailed) as info:
        await node.call(crasher, "big")  # 4 MiB: more than wasmtime lets one call copy out
    assert info.value.reason.kind == "message_too_large"
    assert await node.call(bystander, "fine") == "fine"


async def test_oversized_message_to_a_guest_is_refused(node):
    echo = await node.spawn(component_path("echo.wat"))
    with pytest.raises(MessageTooLarge):
        await node.call(echo, b"x" * (2 << 20))


async def test_self_spam_is_bounded_by_the_mailbox(node):
    crasher = await node.spawn(component_path("crasher.wat"), mailbox_capacity=100,
                               capabilities=Capabilities(send=["*"]))
    assert await node.call(crasher, "spam", timeout=30) == "spammed"
    assert node.process_info(crasher)["mailbox"] <= 100


# -- pinger: every other host import -------------------------------------------------

@pytest.fixture
async def pinger(node):
    node.load(component_path("echo.wat"))
    return await node.spawn(component_path("pinger.wat"), name="pinger",
                            capabilities=Capabilities.all(max_children=5, timers=10))


async def test_self_and_now(node, pinger):
    assert await node.call(pinger, "self") == str(pinger)
    import time
    assert abs(await node.call(pinger, "now") - time.time() * 1000) < 5000


async def test_request_reply_between_guests(node, pinger):
    echo = await node.spawn(component_path("echo.wat"))
    assert await node.call(pinger, ["ask", str(echo)]) == "ping"


async def test_request_to_a_process_that_dies_fails_with_its_reason(node, pinger):
    crasher = await node.spawn(component_path("crasher.wat"))

    class Dying(Recorder):
        async def handle(self, ctx, msg):
            raise RuntimeError("dying on purpose")

    dying = await node.spawn(Dying)
    reply = await node.call(pinger, ["ask", str(dying)])
    assert reply[0] == "error" and "dying on purpose" in reply[1]
    assert crasher


async def test_request_timeout(node, pinger):
    class Silent(Recorder):
        async def handle(self, ctx, msg):
            from airssys_actors import NOREPLY
            return NOREPLY

    silent = await node.spawn(Silent)
    assert await node.call(pinger, ["ask", str(silent)], timeout=5) == "timeout"


async def test_request_to_unknown_address_is_an_err(node, pinger):
    reply = await node.call(pinger, ["ask", "nobody"])
    assert reply[0] == "error" and "noproc" in reply[1]


async def test_timer_fires_into_the_guest(node, pinger):
    assert await node.call(pinger, ["after", 20]) == "tock"


async def test_cancel_timer(node, pinger):
    assert await node.call(pinger, ["cancel", 1000]) is True


async def test_spawn_from_a_guest_by_component_name(node, pinger):
    address = await node.call(pinger, ["spawn", "echo"])
    pid = Pid.parse(address)
    assert pid is not None and node.is_alive(pid)
    assert await node.call(pid, "hi") == "hi"
    reply = await node.call(pinger, ["spawn", "no-such-component"])
    assert reply[0] == "error"


async def test_spawn_is_denied_without_the_capability(node):
    node.load(component_path("echo.wat"))
    bare = await node.spawn(component_path("pinger.wat"))
    reply = await node.call(bare, ["spawn", "echo"])
    assert reply[0] == "error" and "denied" in reply[1]


async def test_monitor_from_a_guest_gets_down(node, pinger):
    target = await node.spawn(component_path("crasher.wat"))
    ref = await node.call(pinger, ["monitor", str(target)])
    assert isinstance(ref, int)
    await node.send(target, "crash")
    await node.wait(target)
    await trio.sleep(0.01)
    reason = await node.call(pinger, "last-down")
    assert reason[0] == "trap"


async def test_link_from_a_guest_takes_it_down(node, pinger):
    target = await node.spawn(component_path("crasher.wat"))
    assert await node.call(pinger, ["link", str(target)]) == "ok"
    await node.send(target, "crash")
    assert (await node.wait(pinger)).kind == "trap"


async def test_send_from_a_guest(node, pinger):
    rec = await node.spawn(Recorder, name="rec")
    assert await node.call(pinger, ["send", "rec", {"k": 1}]) == "ok"
    await trio.sleep(0.01)
    assert await node.call(rec, "log") == [["cast", str(pinger), {"k": 1}]]


async def test_log_from_a_guest_is_an_event(node, pinger):
    with node.subscribe({"log"}) as sub:
        assert await node.call(pinger, "log") == "ok"
        (event,) = sub.drain()
    assert event.pid == pinger and event.data == {"level": "info", "message": "hello from pinger"}
    assert event.component == "pinger"


async def test_guest_sees_its_callers_address_as_sender(node, pinger):
    class Asker(Recorder):
        async def handle(self, ctx, msg):
            if msg.value == "go":
                return await ctx.call("pinger", "self")
            return await super().handle(ctx, msg)

    asker = await node.spawn(Asker)
    assert await node.call(asker, "go") == str(pinger)


