"""Capabilities: deny by default, address patterns, what a denial looks like (an err for
the guest, a capability_denied event naming the process, the import and the target), and
the sender address a guest cannot choose."""

from __future__ import annotations

import pytest
import trio

from airssys_actors import CallFailed, Capabilities
from airssys_actors._capabilities import matches

from ..runtime.actors import Recorder
from .guests import CRASHER, ECHO, PINGER, assert_serving


@pytest.mark.parametrize("pattern, address, allowed", [
    ("workers/*", "workers/a", True),
    ("workers/*", "workers/a/b", True),
    ("workers/*", "workers/", True),
    ("workers/*", "workersX", False),
    ("workers/*", "workers", False),
    ("workers/*", "other/workers/a", False),
    ("workers", "workers", True),
    ("workers", "workers/a", False),
    ("workers", "Workers", False),
    ("work*", "workers", False),         # only a trailing "/*" is a wildcard
    ("work*", "work*", True),
    ("*", "anything", True),
    ("*", "<local.1>", True),
    ("<local.7>", "<local.7>", True),
    ("<local.7>", "<local.70>", False),
    ("", "", True),
    ("", "x", False),
])
def test_pattern(pattern, address, allowed):
    assert matches(pattern, address) is allowed
    assert Capabilities(send=[pattern]).may_message(address) is allowed


def test_deny_by_default():
    caps = Capabilities()
    assert (caps.send, caps.spawn, caps.max_children, caps.timers) == ((), (), 0, 0)
    assert not caps.may_message("anything") and not caps.may_spawn("echo")
    assert getattr(caps, "wasi", None) is None


async def _registered_sinks(node, *names):
    return {name: await node.spawn(Recorder, name=name) for name in names}


@pytest.mark.parametrize("target, allowed", [
    ("workers/a", True), ("workers/b/c", True), ("workersX", False), ("workers", False),
])
async def test_a_guest_may_send_only_where_its_patterns_allow(node, target, allowed):
    sinks = await _registered_sinks(node, "workers/a", "workers/b/c", "workersX", "workers")
    pinger = await node.spawn(PINGER, capabilities=Capabilities(send=["workers/*"]))
    with node.subscribe({"capability_denied"}) as sub:
        reply = await node.call(pinger, ["send", target, 42])
        events = sub.drain()
    await trio.sleep(0.01)
    log = await node.call(sinks[target], "log")
    if allowed:
        assert reply == "ok" and events == []
        assert log == [["cast", str(pinger), 42]]
    else:
        assert reply == ["error", f"denied: send {target}"]
        (event,) = events
        assert (event.pid, event.component, event.data) == (pinger, "pinger", {"import": "send", "target": target})
        assert log == []


async def test_a_name_grant_is_not_a_pid_grant(node):
    """Patterns match the address text the guest gives: granting "sink" does not grant the
    same process's pid text, and the other way round."""
    sink = await node.spawn(Recorder, name="sink")
    by_name = await node.spawn(PINGER, capabilities=Capabilities(send=["sink"]))
    by_pid = await node.spawn(PINGER, capabilities=Capabilities(send=[str(sink)]))
    assert await node.call(by_name, ["send", "sink", 1]) == "ok"
    assert (await node.call(by_name, ["send", str(sink), 2]))[0] == "error"
    assert await node.call(by_pid, ["send", str(sink), 3]) == "ok"
    assert (await node.call(by_pid, ["send", "sink", 4]))[0] == "error"
    await trio.sleep(0.01)
    assert [entry[2] for entry in await node.call(sink, "log")] == [1, 3]


async def test_every_import_that_reaches_another_process_is_denied_without_a_grant(node):
    node.load(ECHO)
    target = await node.spawn(CRASHER, name="target")
    pinger = await node.spawn(PINGER)
    tgt = str(target)
    cases = [
        (["send", tgt, 1], "send", tgt),
        (["ask", tgt], "request", tgt),
        (["link", tgt], "link", tgt),
        (["monitor", tgt], "monitor", tgt),
        (["spawn", "echo"], "spawn", "echo"),
        (["after", 10], "send-after", str(pinger)),
        (["cancel", 10], "send-after", str(pinger)),
    ]
    with node.subscribe({"capability_denied"}) as sub:
        for command, what, where in cases:
            reply = await node.call(pinger, command)
            assert reply[0] == "error" and reply[1].startswith(f"denied: {what} {where}"), command
            (event,) = sub.drain()
            assert event.pid == pinger and event.name is None and event.component == "pinger"
            assert event.data["import"] == what and event.data["target"].startswith(where)
    assert node.is_alive(pinger)
    # nothing was set up behind the denials: the target's crash does not reach the pinger
    assert node.process_info(pinger)["links"] == []
    with pytest.raises(CallFailed):
        await node.call(target, "crash")
    await trio.sleep(0.01)
    assert node.is_alive(pinger)
    assert await node.call(pinger, "last-down") is None
    assert node.statistics().timers == 0
    await assert_serving(node)


async def test_a_denial_names_the_registered_process(node):
    pinger = await node.spawn(PINGER, name="the-pinger")
    with node.subscribe({"capability_denied"}) as sub:
        await node.call(pinger, ["send", "nobody", 1])
        (event,) = sub.drain()
    assert (event.pid, event.name) == (pinger, "the-pinger")


async def test_a_guest_may_always_message_itself_by_pid_or_name(node):
    crasher = await node.spawn(CRASHER, name="me", mailbox_capacity=3)
    assert await node.call(crasher, ["spam", "me", 10]) == 3
    assert await node.call(crasher, ["spam", str(crasher), 10]) == 3  # those three handled by now
    assert await node.call(crasher, "self-call") > 0


async def test_the_sender_a_guest_cannot_choose(node):
    """The WIT send/request take no sender: the host stamps the guest's own pid on every
    message, so receivers can trust msg.sender."""
    rec = await node.spawn(Recorder, name="rec")
    pinger = await node.spawn(PINGER, name="pinger", capabilities=Capabilities(send=["rec"]))
    crasher = await node.spawn(CRASHER, capabilities=Capabilities(send=["rec"]), mailbox_capacity=5)
    assert await node.call(pinger, ["send", "rec", "cast"]) == "ok"
    assert await node.call(pinger, ["ask", "rec", "request"]) == "ok"  # Recorder answers "ok"
    await trio.sleep(0.01)
    assert await node.call(rec, "log") == [["cast", str(pinger), "cast"], ["call", str(pinger), "request"]]
    # a named guest is still its pid, not its name
    assert await node.call(crasher, ["spam", "rec", 3]) == 3
    await trio.sleep(0.01)
    assert (await node.call(rec, "log"))[2:] == [["cast", str(crasher), "x"]] * 3


async def test_an_echo_cast_goes_back_to_the_real_sender_only_with_a_grant(node):
    rec = await node.spawn(Recorder, name="rec")
    echo = await node.spawn(ECHO, capabilities=Capabilities(send=["rec"]))
    other = await node.spawn(Recorder)
    # a Python process sends a cast: echo sends it back to that sender's pid, which its
    # grant ("rec", a name) does not cover
    class Caster(Recorder):
        async def init(self, ctx, args):
            await super().init(ctx, args)
            await ctx.send(echo, "bounce")

    with node.subscribe({"capability_denied"}) as sub:
        caster = await node.spawn(Caster)
        event = await sub.wait_for(lambda e: True)
    assert (event.pid, event.data) == (echo, {"import": "send", "target": str(caster)})
    assert await node.call(rec, "log") == [] and await node.call(other, "log") == []
