"""Fault injection is an input like any other: every argument is checked (an infinite
delay is refused), and every message a delay holds back is delivered or dead-lettered,
also when the node stops while it is held (a held call's caller is told at once)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from airssys_actors import Actor, CallFailed, Context, Message, Node, NodeClosed
from airssys_actors.faults import KINDS

from .conftest import RunningNode

NAN, INF = float("nan"), float("inf")


class Echo(Actor):
    async def handle(self, ctx: Context, msg: Message) -> Any:
        return msg.value


class Ticker(Actor):
    """Sets a timer to itself and one to ``echo`` when it starts."""

    async def init(self, ctx: Context, args: Any) -> None:
        ctx.send_after(ctx.pid, "own tick", 3600)
        ctx.send_after("echo", "tick for echo", 3600)


def _refused(info: pytest.ExceptionInfo[BaseException], field: str) -> None:
    assert isinstance(info.value, (TypeError, ValueError))
    assert field in str(info.value), str(info.value)


@pytest.mark.parametrize("method, args, field", [
    *[("delay", ("w", bad), "seconds") for bad in [INF, NAN, -INF, -1, True, "1", None, 10**400]],
    *[("delay", ("w", 0.1, bad), "count") for bad in [0, -1, 1.5, True, False, NAN, "2", None]],
    *[("drop", ("w", bad), "count") for bad in [0, -1, 1.5, True, NAN, "2"]],
    *[("fail_next_init", ("w", bad), "times") for bad in [0, -1, 1.5, True, NAN, "2"]],
    ("fail_next_init", (5,), "name"),
    ("fail_next_init", ("",), "name"),
    *[(method, (target,), "target") for method in ["kill", "trap_next", "exhaust_fuel", "stall", "exceed_memory",
                                                  "clear"] for target in [5, None if method != "clear" else 1.5, ["w"]]],
])
async def test_every_fault_argument_is_checked(node, method, args, field):
    await node.spawn(Echo, name="w")
    with pytest.raises((TypeError, ValueError)) as info:
        getattr(node.faults, method)(*args)
    _refused(info, field)
    # nothing was armed: the next message is handled at once, and the node serves
    with trio.fail_after(2):
        assert await node.call("w", "on time") == "on time"


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "meteor"}, "kind"), ({"kind": 3}, "kind"), ({"kind": None}, "kind"),
    ({"target": 3}, "target"), ({"target": b"w"}, "target"),
    ({"seconds": INF}, "seconds"), ({"seconds": NAN}, "seconds"), ({"seconds": -0.1}, "seconds"),
    ({"seconds": "0.1"}, "seconds"), ({"count": True}, "count"), ({"count": 0}, "count"),
    ({"count": 2.0}, "count"),
])
async def test_inject_checks_every_argument_whatever_the_kind(node, kwargs, field):
    pid = await node.spawn(Echo, name="w")
    for kind in (kwargs.get("kind", k) for k in KINDS):
        options = {"target": "w", "kind": kind, "seconds": 0.05, "count": 1, **kwargs}
        with pytest.raises((TypeError, ValueError)) as info:
            node.faults.inject(options.pop("target"), options.pop("kind"), **options)
        _refused(info, field)
    assert node.is_alive(pid)  # not even the kill went through
    assert await node.call("w", "fine") == "fine"


async def test_a_delayed_call_fails_at_once_when_the_node_stops():
    outcome: list[Any] = []
    async with trio.open_nursery() as outer:
        async with Node(shutdown_timeout=1.0) as node:
            pid = await node.spawn(Echo, name="w")
            node.faults.delay(pid, 3600, count=2)

            async def caller() -> None:
                start = trio.current_time()
                try:
                    outcome.append(await node.call(pid, "held", timeout=60))
                except CallFailed as exc:
                    outcome.append(exc)
                outcome.append(trio.current_time() - start)

            outer.start_soon(caller)
            await node.send(pid, "held cast")
            await trio.sleep(0.2)
            assert not outcome  # both are held by the delay
    assert isinstance(outcome[0], CallFailed), outcome
    assert "node_stopped" in str(outcome[0].reason)
    assert outcome[1] < 30  # told when the node stopped, not at its timeout
    letters = [d for d in node.dead_letters() if d.reason == "node_stopped"]
    assert sorted(d.value for d in letters) == ["held", "held cast"]
    assert {d.to for d in letters} == {str(pid)}


async def test_send_after_timers_pending_at_node_stop_become_dead_letters():
    async with Node(shutdown_timeout=1.0) as node:
        echo = await node.spawn(Echo, name="echo")
        node.send_after(echo, "from outside", 3600)
        node.send_after("nobody-yet", "to a name", 3600)
        await node.spawn(Ticker)
        assert node.statistics().timers == 4
    letters = {d.value: d.reason for d in node.dead_letters()}
    assert letters["from outside"] == "node_stopped"
    assert letters["to a name"] == "node_stopped"
    # A process's own timers are taken back when it exits (they were never sent); the
    # node's stop dead-letters only what is still pending after every process is gone.
    assert node.statistics().timers == 0
    with pytest.raises(NodeClosed):
        node.send_after(echo, "too late", 1)


async def test_a_delay_that_falls_due_before_the_stop_is_still_delivered():
    async with Node(shutdown_timeout=1.0) as node:
        pid = await node.spawn(Echo)
        node.faults.delay(pid, 0.05, count=1)
        with trio.fail_after(5):
            assert await node.call(pid, "late") == "late"
    assert not [d for d in node.dead_letters() if d.reason == "node_stopped"]


def test_the_control_socket_refuses_bad_fault_arguments_and_the_node_serves(running_node: RunningNode):
    """A client that is not the CLI sends what Python's json writes (NaN, Infinity) and
    values of the wrong type: each is refused, naming the field (or, for the non-JSON
    literals, the literal), and the node serves on."""
    from .clients import exchange, strict_json

    cases = [
        ('{"target": "echo", "fault": "delay", "seconds": Infinity}', "Infinity"),
        ('{"target": "echo", "fault": "delay", "seconds": NaN}', "NaN"),
        ('{"target": "echo", "fault": "delay", "seconds": 1e999}', "1e999"),
        ('{"target": "echo", "fault": "delay", "seconds": "1"}', "seconds"),
        ('{"target": "echo", "fault": "delay", "seconds": -1}', "seconds"),
        ('{"target": "echo", "fault": "drop", "count": true}', "count"),
        ('{"target": "echo", "fault": "drop", "count": -4}', "count"),
        ('{"target": ["echo"], "fault": "kill"}', "target"),
        ('{"target": "echo", "fault": "meteor"}', "fault"),
    ]
    for args, field in cases:
        (line,) = exchange(running_node.socket, b'{"cmd": "inject", "args": ' + args.encode() + b"}\n")
        answer = strict_json(line)
        assert answer.get("ok") is False, (args, answer)
        assert field in answer.get("error", ""), (args, answer)
        running_node.assert_alive()
    result = running_node.cli("call", "echo", json.dumps("still here"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "still here"
