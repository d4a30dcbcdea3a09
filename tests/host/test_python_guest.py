"""End-to-end: a guest written in Python and built with componentize-py (make python-guest)."""

import pytest

from airssys_actors import CallFailed, Capabilities, Component, ExitReason

from ..conftest import PYTHON_GUEST

pytestmark = pytest.mark.skipif(
    not PYTHON_GUEST.exists(), reason="build the Python guest first: make python-guest"
)


@pytest.fixture(scope="module")
def kvstore():
    return Component.load(PYTHON_GUEST, version="py1")


async def test_kvstore_stores_and_answers(node, kvstore):
    pid = await node.spawn(kvstore, name="kv", args={"data": {"a": 1}})
    assert await node.call("kv", ["get", "a"]) == 1
    assert await node.call("kv", ["put", "b", [1, 2]]) == "ok"
    await node.send("kv", ["put", "c", "cast"])
    assert await node.call("kv", "keys") == ["a", "b", "c"]
    assert await node.call("kv", ["delete", "a"]) is True
    assert await node.call("kv", "size") == 2
    assert await node.call("kv", "whoami") == str(pid)
    assert node.process_info(pid)["version"] == "py1"


async def test_kvstore_deferred_reply(node, kvstore):
    pid = await node.spawn(kvstore)
    assert await node.call(pid, "ping-later") == "pong"


async def test_python_exception_is_a_trap(node, kvstore):
    pid = await node.spawn(kvstore)
    with node.subscribe({"log"}) as logs:
        with pytest.raises(CallFailed) as info:
            await node.call(pid, "crash")
        assert any("asked to crash" in e.data["message"] for e in logs.drain())
    assert info.value.reason.kind == "trap"


async def test_python_err_is_reason_error(node, kvstore):
    pid = await node.spawn(kvstore, capabilities=Capabilities())
    with pytest.raises(CallFailed) as info:
        await node.call(pid, "fail")
    assert info.value.reason == ExitReason("error", "asked to fail")


async def test_kvstore_snapshot_round_trip(node, kvstore):
    pid = await node.spawn(kvstore, args={"data": {"x": 42}})
    proc = node._processes[pid]
    state = proc.behaviour.snapshot()
    other = await node.spawn(kvstore)
    node._processes[other].behaviour.instance.upgrade("py1", state)
    assert await node.call(other, ["get", "x"]) == 42
