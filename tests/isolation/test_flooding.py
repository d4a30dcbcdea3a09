"""Guests that flood the node through the host: sends, timers, spawns, requests to
themselves. Each is bounded (mailbox, capabilities), refused calls are errors the guest
sees (and capability_denied events), and every message that did not get through is a
dead letter. (Self-spam bounded by the mailbox is in tests/host/test_wasm_processes.py;
here the accounting.)"""

from __future__ import annotations

import pytest

from airssys_actors._events import NOISY_PER_SECOND
import trio

from airssys_actors import CallFailed, Capabilities, Component, Limits, Pid

from ..runtime.actors import Recorder
from .guests import CRASHER, ECHO, assert_serving, dead_letter_reasons

SPAM = 100_000


async def _answer(node, pid, timeout=5.0):
    """Poll crasher's "last-answer" until a reply/failed envelope has arrived."""
    with trio.fail_after(timeout):
        while (answer := await node.call(pid, "last-answer")) is None:
            await trio.sleep(0.01)
    return answer


# -- send ------------------------------------------------------------------------------

async def test_self_spam_every_message_is_delivered_or_a_dead_letter(node):
    crasher = await node.spawn(CRASHER, mailbox_capacity=100)  # itself: no capability needed
    dead = node.dead_letter_count
    assert await node.call(crasher, "spam", timeout=30) == "spammed"
    assert node.dead_letter_count - dead == SPAM - 100
    assert dead_letter_reasons(node, dead) == {"mailbox_full": 10_000}  # the bounded window
    assert {d.value for d in node.dead_letters()[-10:]} == {"ping"}
    assert await node.call(crasher, "ping") == "pong"  # after the 100 queued pings
    assert node.process_info(crasher)["messages_in"] == 1 + 100 + 1
    await assert_serving(node)


async def test_spam_to_another_process_fills_its_mailbox_and_the_rest_are_dead_letters(node):
    sink = await node.spawn(Recorder, name="sink", mailbox_capacity=10)
    crasher = await node.spawn(CRASHER, capabilities=Capabilities(send=["sink"]))
    dead = node.dead_letter_count
    assert await node.call(crasher, ["spam", "sink"], timeout=30) == 10
    assert node.dead_letter_count - dead == SPAM - 10
    last = node.dead_letters()[-1]
    assert (last.to, last.sender, last.value, last.reason) == ("sink", crasher, "x", "mailbox_full")
    # the ten that got through carry the guest's own pid as sender: it cannot pick another
    assert await node.call(sink, "log") == [["cast", str(crasher), "x"]] * 10
    assert node.is_alive(crasher)
    await assert_serving(node)


async def test_spam_without_the_capability_sends_nothing_and_each_denial_is_an_event(node):
    sink = await node.spawn(Recorder, name="sink")
    crasher = await node.spawn(CRASHER, capabilities=Capabilities(send=["sink/*"]))
    dead = node.dead_letter_count
    suppressed = node.events.suppressed.get("capability_denied", 0)
    with node.subscribe({"capability_denied"}, maxlen=2 * SPAM) as sub:
        assert await node.call(crasher, ["spam", "sink"], timeout=30) == 0
        events = sub.drain()
    # Each denial is an event, up to the noisy-kind rate cap; the rest are counted.
    assert len(events) + node.events.suppressed.get("capability_denied", 0) - suppressed == SPAM
    assert len(events) >= min(SPAM, NOISY_PER_SECOND)
    assert {(e.pid, e.component, e.data["import"], e.data["target"]) for e in events} == {
        (crasher, "crasher", "send", "sink")}
    assert node.dead_letter_count == dead  # refused, not lost: the guest was told each time
    assert await node.call(sink, "log") == []
    await assert_serving(node)


# -- timers ------------------------------------------------------------------------------

async def test_timers_are_capped_by_the_capability(node):
    crasher = await node.spawn(CRASHER, capabilities=Capabilities(timers=100))
    before = node.statistics().timers
    suppressed = node.events.suppressed.get("capability_denied", 0)
    with node.subscribe({"capability_denied"}) as sub:
        assert await node.call(crasher, "timers") == 100
        events = sub.drain()
    assert node.statistics().timers - before == 100
    assert len(events) + node.events.suppressed.get("capability_denied", 0) - suppressed == 10_000 - 100
    assert {(e.pid, e.data["import"]) for e in events} == {(crasher, "send-after")}
    assert all(e.data["target"].startswith(str(crasher)) for e in events)  # its own address
    assert await node.call(crasher, "timers") == 0  # the first 100 are still pending
    # the process's timers go with it: none fires later into a dead process
    assert await node.call(crasher, "stop") == "stopping"
    await node.wait(crasher)
    assert node.statistics().timers == before
    await assert_serving(node)


async def test_no_timers_without_the_capability(node):
    crasher = await node.spawn(CRASHER)
    before = node.statistics().timers
    assert await node.call(crasher, "timers") == 0
    assert node.statistics().timers == before


# -- spawn ------------------------------------------------------------------------------

def _children(node, parent: Pid) -> list[Pid]:
    return [Pid.parse(p["pid"]) for p in node.processes() if p["parent"] == str(parent)]


async def test_spawning_is_capped_by_max_children(node):
    node.load(ECHO)
    crasher = await node.spawn(CRASHER, capabilities=Capabilities(spawn=["echo"], max_children=5))
    suppressed = node.events.suppressed.get("capability_denied", 0)
    with node.subscribe({"capability_denied"}) as sub:
        assert await node.call(crasher, "spawn-loop") == 5
        events = sub.drain()
    assert len(events) + node.events.suppressed.get("capability_denied", 0) - suppressed == 10_000 - 5
    assert {(e.pid, e.data["import"], e.data["target"]) for e in events} == {(crasher, "spawn", "echo")}
    await trio.sleep(0.01)
    children = _children(node, crasher)
    assert len(children) == 5
    for child in children:
        assert await node.call(child, "hi") == "hi"
    # the cap counts live children: one exits, one more may start
    node.kill(children[0])
    await node.wait(children[0])
    assert await node.call(crasher, "spawn-loop") == 1
    await trio.sleep(0.01)
    assert len(_children(node, crasher)) == 5
    await assert_serving(node)


@pytest.mark.parametrize("caps, started", [
    (Capabilities(), 0),
    (Capabilities(spawn=["echo"]), 0),                         # max_children defaults to 0
    (Capabilities(spawn=["ech*"], max_children=5), 0),         # no globbing inside a name
    (Capabilities(spawn=["echo/*"], max_children=5), 0),       # "echo/*" is not "echo"
    (Capabilities(spawn=["*"], max_children=3), 3),
])
async def test_spawn_patterns(node, caps, started):
    node.load(ECHO)
    crasher = await node.spawn(CRASHER, capabilities=caps)
    assert await node.call(crasher, "spawn-loop") == started
    await trio.sleep(0.01)
    assert len(_children(node, crasher)) == started


async def test_children_of_a_guest_get_no_capabilities(node):
    # Register crasher under the name "echo", so that spawn-loop starts crashers.
    node.register_component(Component.load(CRASHER), "echo")
    parent = await node.spawn(CRASHER, capabilities=Capabilities.all(max_children=1))
    assert await node.call(parent, "spawn-loop") == 1
    await trio.sleep(0.01)
    (child,) = _children(node, parent)
    assert await node.call(child, "spawn-loop") == 0
    assert await node.call(child, "timers") == 0


async def test_children_of_a_guest_get_no_more_resources_than_their_parent(node):
    node.register_component(Component.load(CRASHER), "echo")
    tight = Limits(fuel=5_000_000, deadline=None)
    parent = await node.spawn(CRASHER, limits=tight, capabilities=Capabilities(spawn=["echo"], max_children=1))
    with pytest.raises(CallFailed):  # ~7 million units: more than the parent may use
        await node.call(parent, ["spin", 1_000_000])
    parent = await node.spawn(CRASHER, limits=tight, capabilities=Capabilities(spawn=["echo"], max_children=1))
    assert await node.call(parent, "spawn-loop") == 1
    await trio.sleep(0.01)
    (child,) = _children(node, parent)
    with pytest.raises(CallFailed) as info:
        await node.call(child, ["spin", 1_000_000])
    assert info.value.reason.kind == "out_of_fuel"


async def test_children_of_a_guest_outlive_it(node):
    """Documented (docs/security.md): spawn does not link; a guest's children stay alive
    when it exits, and count against nobody's max_children afterwards."""
    node.load(ECHO)
    crasher = await node.spawn(CRASHER, capabilities=Capabilities(spawn=["echo"], max_children=3))
    assert await node.call(crasher, "spawn-loop") == 3
    await trio.sleep(0.01)
    children = _children(node, crasher)
    with pytest.raises(CallFailed):
        await node.call(crasher, "crash")
    assert all(node.is_alive(c) for c in children)


# -- requests to itself ----------------------------------------------------------------------

async def test_a_request_to_itself_does_not_deadlock(node):
    crasher = await node.spawn(CRASHER)  # itself: no capability needed
    ref = await node.call(crasher, "self-call")
    assert isinstance(ref, int)
    # the request arrives as a call from itself once "self-call" returns; it answers it
    assert await _answer(node, crasher) == ["reply", "pong"]
    assert node.statistics().pending_calls == 0
    await assert_serving(node)


async def test_a_threaded_self_request_that_takes_too_long_fails_with_timeout(node):
    crasher = await node.spawn(CRASHER, threaded=True, limits=Limits(fuel=None, deadline=None))
    dead = node.dead_letter_count
    assert isinstance(await node.call(crasher, ["self-call", ["spin", 300_000_000], 50]), int)
    assert await _answer(node, crasher) == ["failed", "timeout"]
    # its own late answer is not lost either
    with trio.fail_after(5):
        while node.dead_letter_count == dead:
            await trio.sleep(0.01)
    (late,) = node.dead_letters()[dead - node.dead_letter_count:]
    assert (late.reason, late.value, late.sender) == ("late_reply", "spun", crasher)
    await assert_serving(node)


async def test_an_inline_self_request_that_takes_too_long_fails_with_timeout(node):
    crasher = await node.spawn(CRASHER, limits=Limits(fuel=None, deadline=None))
    await node.call(crasher, ["self-call", ["spin", 300_000_000], 50])  # ~0.25 s of spinning
    assert await _answer(node, crasher) == ["failed", "timeout"]
