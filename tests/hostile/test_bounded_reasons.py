"""Guest text that becomes an exit reason, a signal or a log line is capped: a guest's
64 MiB ``err`` text, ``stop`` reason or log line, a user's ``exit(pid, reason)``, a trap,
each costs the node a few KiB wherever it goes (the exit record, the event history, the
dead letter of the call it died on, a monitor's DOWN, a trapped EXIT, a supervisor's
``last_reason``), and the node keeps serving."""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
import trio

import supervisors
from airssys_actors import Actor, CallFailed, Context, ExitReason, Kind, Message, Node, SpawnFailed
from airssys_actors._reasons import MAX_DETAIL_BYTES
from supervisors import Child, Supervisor

from ..isolation.guests import ECHO, assert_serving
from .conftest import rss_of

FLOODER = os.path.join(os.path.dirname(__file__), "guests", "flooder.wat")
HUGE = 64 << 20
MARK = f"...[truncated, {HUGE} bytes]"


def command(op: bytes, n: int, target: str = "") -> bytes:
    """A flooder command (see guests/flooder.wat)."""
    return op + struct.pack("<I", n) + target.encode()


async def released(node: Node) -> None:
    """Wait until the dead instances (64 MiB of guest memory each) are freed: the node
    frees them when it is idle."""
    with trio.fail_after(10):
        while node.reaper.pending:
            await trio.sleep(0.01)


def assert_capped(text: str | None, size: int = HUGE) -> None:
    assert text is not None
    assert len(text.encode()) <= MAX_DETAIL_BYTES + 32  # "kind: " in front at most
    assert text.endswith(f"...[truncated, {size} bytes]"), text[-80:]


class Watcher(Actor):
    """Monitors and links to what it is told (trapping exits); "seen" returns the
    payload sizes and kinds of the DOWN and EXIT messages it got."""

    async def init(self, ctx: Context, args: Any) -> None:
        ctx.trap_exits = True
        self.seen: list[list[Any]] = []

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind in (Kind.DOWN, Kind.EXIT):
            self.seen.append([msg.kind.name.lower(), len(msg.payload), msg.value])
            return None
        op, *rest = msg.value
        if op == "watch":
            ctx.monitor(rest[0])
            ctx.link(rest[0])
            return "ok"
        return self.seen


async def test_a_64_mib_err_text_costs_a_few_kib_everywhere_it_goes():
    async with Node(shutdown_timeout=1.0) as node:
        tree = Supervisor("root", max_restarts=1000, within=60.0, children=[
            Child("flood", FLOODER, name="flood"),
        ])
        root = await supervisors.start(node, tree)
        watcher = await node.spawn(Watcher)
        history = node.subscribe({"exit"})

        async def one_round() -> None:
            pid = await node.spawn(FLOODER)
            assert await node.call(watcher, ["watch", str(pid)]) == "ok"
            with pytest.raises(CallFailed) as failed:
                await node.call_bytes(pid, command(b"e", HUGE))
            assert failed.value.reason.kind == "error"
            assert_capped(failed.value.reason.detail)
            assert_capped(str(node.exit_reason(pid)))
            # the supervised one too, by its name: its supervisor restarts it
            with pytest.raises(CallFailed):
                await node.call_bytes("flood", command(b"e", HUGE))
            await released(node)

        await one_round()  # warm up: caches, the compiled component, allocator arenas
        before = rss_of(os.getpid())
        for _ in range(6):
            await one_round()
        grown = rss_of(os.getpid()) - before
        # Each round makes two 64 MiB texts; keeping any one of them whole anywhere
        # would show as 128 MiB per round here.
        assert grown < 48 << 20, f"RSS grew by {grown >> 20} MiB over 6 rounds"

        exits = [e for e in history.drain() if e.reason is not None and e.reason.startswith("error")]
        assert len(exits) == 14
        for event in exits:
            assert_capped(event.reason)
        for event in node.events.history:
            assert len((event.reason or "").encode()) <= MAX_DETAIL_BYTES + 32
        letters = [d for d in node.dead_letters() if d.reason.startswith("error")]
        assert len(letters) == 14  # the call each one died on
        for letter in letters:
            assert_capped(letter.reason)
        (row,) = [r for r in await root.which_children() if r.id == "flood"]
        assert row.restarts == 7
        assert_capped(row.last_reason)
        seen = await node.call(watcher, "seen")
        assert sorted({kind for kind, _, _ in seen}) == ["down", "exit"]
        for _, size, value in seen:
            assert size <= MAX_DETAIL_BYTES + 64
            assert value[0] == "error" and value[1].endswith(MARK)
        assert await node.call_bytes("flood", b"\xc0") == b"\xc0"  # restarted, serving
        await assert_serving(node)


async def test_an_init_err_of_64_mib_fails_the_spawn_with_a_capped_reason(node: Node):
    with pytest.raises(SpawnFailed) as failed:
        await node.spawn(FLOODER, args=command(b"e", HUGE))
    assert failed.value.reason.kind == "error"
    assert_capped(failed.value.reason.detail)
    await assert_serving(node)


async def test_a_64_mib_stop_reason_is_capped_and_the_node_serves(node: Node):
    pid = await node.spawn(FLOODER)
    watcher = await node.spawn(Watcher)
    await node.call(watcher, ["watch", str(pid)])
    assert await node.call_bytes(pid, command(b"s", HUGE)) == b"\xc0"
    reason = await node.wait(pid)
    assert reason.kind == "exit"
    assert_capped(reason.detail)
    await trio.sleep(0.05)
    seen = await node.call(watcher, "seen")
    assert sorted(kind for kind, _, _ in seen) == ["down", "exit"]
    for _, size, value in seen:
        assert size <= MAX_DETAIL_BYTES + 64
        assert value[0] == "exit" and value[1].endswith(MARK)
    await assert_serving(node)


async def test_a_64_mib_log_line_is_capped_in_the_event(node: Node):
    pid = await node.spawn(FLOODER)
    with node.subscribe({"log"}) as logs:
        assert await node.call_bytes(pid, command(b"l", HUGE)) == b"\xc0"
        (event,) = logs.drain()
    assert_capped(event.data["message"])
    assert node.is_alive(pid)
    await assert_serving(node)


async def test_a_users_exit_reason_and_a_trap_are_capped(node: Node):
    echo = await node.spawn(ECHO)
    await node.exit(echo, "x" * (5 << 20))
    reason = await node.wait(echo)
    assert reason.kind == "exit"
    assert_capped(reason.detail, 5 << 20)
    pid = await node.spawn(FLOODER)
    with pytest.raises(CallFailed) as failed:
        await node.call_bytes(pid, b"r")  # a stack overflow: wasmtime's text, first line only
    assert failed.value.reason.kind == "trap"
    assert "call stack exhausted" in failed.value.reason.detail
    await assert_serving(node)


def test_the_cap_is_in_utf8_bytes_and_keeps_the_original_size():
    assert ExitReason("exit", "a" * MAX_DETAIL_BYTES).detail == "a" * MAX_DETAIL_BYTES
    assert ExitReason("error", "ok").detail == "ok"
    assert ExitReason("normal").detail is None
    text = "é" * MAX_DETAIL_BYTES  # two bytes each: over the cap in bytes, not in characters
    detail = ExitReason("error", text).detail
    assert detail is not None
    assert len(detail.encode()) <= MAX_DETAIL_BYTES
    assert detail.endswith(f"...[truncated, {2 * MAX_DETAIL_BYTES} bytes]")
    assert detail.startswith("é" * 100)
    # from the wire (a reason a guest or a peer sends) as well
    wired = ExitReason.from_wire(["error", "z" * 100_000])
    assert wired.detail is not None and wired.detail.endswith("...[truncated, 100000 bytes]")
