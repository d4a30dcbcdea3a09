"""Paths, small actors and checks the isolation tests share."""

from __future__ import annotations

from collections import Counter
from typing import Any

from airssys_actors import NOREPLY, Actor, Context, Kind, Message, Node

from ..conftest import COMPONENTS, ROOT

ECHO = str(COMPONENTS / "echo.wat")
COUNTER = str(COMPONENTS / "counter.wat")
CRASHER = str(COMPONENTS / "crasher.wat")
PINGER = str(COMPONENTS / "pinger.wat")
SLOW_UPGRADE = str(COMPONENTS / "slow_upgrade.wat")
FSPROBE = ROOT / "build" / "guests" / "fsprobe.wasm"


def rss() -> int:
    """This process's resident memory in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def deep_bytes(n: int) -> bytes:
    """msgpack for nil nested in ``n`` one-element arrays (what crasher's "deep" replies)."""
    return b"\x91" * n + b"\xc0"


async def assert_serving(node: Node) -> None:
    """The node still starts processes and answers calls."""
    echo = await node.spawn(ECHO)
    assert await node.call(echo, ["still", "serving"]) == ["still", "serving"]


def dead_letter_reasons(node: Node, since: int = 0) -> Counter[str]:
    """Reasons of the dead letters recorded after the first ``since`` (within the bound)."""
    letters = node.dead_letters()
    new = node.dead_letter_count - since
    return Counter(d.reason.split(":")[0] for d in letters[max(0, len(letters) - new):])


class RawRecorder(Actor):
    """Keeps every message's raw bytes without decoding them; "log" (a call whose bytes
    decode to that str) returns [kind, sender, payload-bytes] triples."""

    async def init(self, ctx: Context, args: Any) -> None:
        self.seen: list[list[Any]] = []

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind == Kind.CALL and msg.payload == b"\xa3log":
            return self.seen
        self.seen.append([msg.kind.name.lower(), None if msg.sender is None else str(msg.sender), msg.payload])
        return "ok" if msg.kind == Kind.CALL else None


class Silent(Actor):
    """Never answers a call."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        return NOREPLY
