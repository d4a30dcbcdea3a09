"""Threaded guests (``threaded=True``) with no fuel and no deadline: a kill reaches them at
every point of their life (instantiation, init, handle, a code change's snapshot and
upgrade), those points run off the node's thread so the node keeps serving meanwhile,
and host calls made from them work."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from airssys_actors import Actor, Capabilities, Component, Limits, SpawnFailed, UpgradeFailed

from ..isolation.guests import ECHO, assert_serving
from ._wat import LOOP, SEND_ARGS, guest

UNLIMITED = Limits(fuel=None, deadline=None)
PROBE = Capabilities(send=["probe"])


class Probe(Actor):
    """Records what guests send it; a call returns the list."""

    async def init(self, ctx: Any, args: Any) -> None:
        self.seen: list[Any] = []

    async def handle(self, ctx: Any, msg: Any) -> Any:
        if msg.payload == b"\xa3log":
            return self.seen
        self.seen.append(msg.payload)
        return None


async def _killed_while_starting(node: Any, component: Component, name: str) -> None:
    """Spawn ``component`` (which never finishes starting) in a task; while it loops the
    node answers another process; kill it by name: the spawner gets SpawnFailed(killed)."""
    echo = await node.spawn(ECHO)
    failures: list[BaseException] = []

    async def spawner() -> None:
        try:
            await node.spawn(component, name=name, limits=UNLIMITED, threaded=True)
        except SpawnFailed as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spawner)
        await trio.sleep(0.2)  # it loops in its worker thread by now
        with trio.fail_after(5):
            assert await node.call(echo, "meanwhile") == "meanwhile"
        node.kill(name)
    assert len(failures) == 1
    assert failures[0].reason.kind == "killed"
    assert not node.is_alive(name)
    await assert_serving(node)


async def test_a_looping_init_with_no_limits_is_killable_and_the_node_serves(node):
    await _killed_while_starting(node, Component.load(guest(init=LOOP).encode()), "loops-in-init")


async def test_a_guest_looping_while_it_is_instantiated_is_killable(node):
    await _killed_while_starting(node, Component.load(guest(start=LOOP).encode()), "loops-in-start")


async def test_cancelling_the_spawn_of_a_looping_init_ends_it(node):
    component = Component.load(guest(init=LOOP).encode())
    with trio.move_on_after(0.3) as scope:
        await node.spawn(component, name="cancelled", limits=UNLIMITED, threaded=True)
    assert scope.cancelled_caught
    assert not node.is_alive("cancelled")
    await assert_serving(node)


async def test_a_looping_handler_with_no_limits_is_killable(node):
    pid = await node.spawn(Component.load(guest(handle=LOOP).encode()), limits=UNLIMITED, threaded=True)
    echo = await node.spawn(ECHO)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.send, pid, "loop")
        await trio.sleep(0.2)
        assert await node.call(echo, "meanwhile") == "meanwhile"
        node.kill(pid)
    with trio.fail_after(5):
        assert (await node.wait(pid)).kind == "killed"


async def test_host_calls_from_init_of_a_threaded_guest_work(node):
    await node.spawn(Probe, name="probe")
    await node.spawn(Component.load(guest(init=SEND_ARGS).encode()), args="hello",
                     capabilities=PROBE, limits=UNLIMITED, threaded=True)
    assert await node.call("probe", "log") == [b"\xa5hello"]


@pytest.mark.parametrize("part", ["snapshot", "upgrade"])
async def test_a_looping_code_change_of_a_threaded_guest_is_killable_and_the_node_serves(node, part):
    if part == "snapshot":  # the running version loops in snapshot
        running, new = Component.load(guest(snapshot=LOOP).encode()), Component.load(ECHO)
    else:  # the new version loops in upgrade
        running, new = Component.load(ECHO), Component.load(guest(upgrade=LOOP).encode(), version="v2")
    old = await node.spawn(running, name="changing", limits=UNLIMITED, threaded=True)
    echo = await node.spawn(ECHO)
    outcome: list[BaseException] = []

    async def change() -> None:
        await node.suspend(old)
        try:
            await node.prepare_code_change_async(old, new)
        except UpgradeFailed as exc:
            outcome.append(exc)
        finally:
            if node.is_alive(old):
                node.resume(old)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(change)
        await trio.sleep(0.2)
        with trio.fail_after(5):
            assert await node.call(echo, "meanwhile") == "meanwhile"
        node.kill(old)
    assert len(outcome) == 1 and outcome[0].cause == "killed"
    with trio.fail_after(5):
        assert (await node.wait(old)).kind == "killed"
    await assert_serving(node)


async def test_host_calls_from_upgrade_of_a_threaded_guest_work(node):
    await node.spawn(Probe, name="probe")
    old = await node.spawn(ECHO, capabilities=PROBE, limits=UNLIMITED, threaded=True)
    new = Component.load(guest(upgrade=SEND_ARGS).encode(), version="v2")
    await node.suspend(old)
    change = await node.prepare_code_change_async(old, new)
    change.commit()
    node.resume(old)
    assert await node.call(old, "after") == "after"
    assert await node.call("probe", "log") == [b""]  # echo's snapshot is empty


async def test_a_new_version_looping_while_it_is_instantiated_for_a_change_is_killable(node):
    old = await node.spawn(ECHO, limits=UNLIMITED, threaded=True)
    new = Component.load(guest(start=LOOP).encode(), version="v2")
    echo = await node.spawn(ECHO)
    outcome: list[BaseException] = []

    async def preload() -> None:
        try:
            await node.preload_code_change_async(old, new)
        except UpgradeFailed as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(preload)
        await trio.sleep(0.2)
        with trio.fail_after(5):
            assert await node.call(echo, "meanwhile") == "meanwhile"
        node.kill(old)
    assert len(outcome) == 1 and outcome[0].cause == "killed"
    await assert_serving(node)


async def test_host_calls_from_a_synchronous_code_change_of_a_threaded_guest_work(node):
    """prepare_code_change (sync) runs upgrade on the node's thread: the guest's host
    calls are made there directly instead of hopping to it."""
    await node.spawn(Probe, name="probe")
    old = await node.spawn(ECHO, capabilities=PROBE, threaded=True)
    new = Component.load(guest(upgrade=SEND_ARGS).encode(), version="v2")
    await node.suspend(old)
    node.prepare_code_change(old, new).commit()
    node.resume(old)
    assert await node.call(old, "after") == "after"
    assert await node.call("probe", "log") == [b""]
