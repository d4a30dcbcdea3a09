"""Python workers the supervision tests share (fast, and they record their starts)."""

from __future__ import annotations

from typing import Any

import trio

from airssys_actors import Actor, Context, Message

STARTS: list[str] = []


class Worker(Actor):
    """Replies its id and a count of messages it handled; "crash" raises, "stop" stops
    with the given reason, ["sleep", s] sleeps."""

    async def init(self, ctx: Context, args: Any) -> None:
        self.id = (args or {}).get("id", "?")
        self.count = 0
        self.seen: list[Any] = []
        STARTS.append(self.id)
        if (args or {}).get("fail_init"):
            raise RuntimeError("init refused")
        if (args or {}).get("trap_exits"):
            ctx.trap_exits = True

    async def handle(self, ctx: Context, msg: Message) -> Any:
        value = msg.value
        if value == "crash":
            raise RuntimeError("crashed on purpose")
        if isinstance(value, list) and value and value[0] == "stop":
            ctx.stop(value[1])
            return "stopping"
        if isinstance(value, list) and value and value[0] == "sleep":
            await trio.sleep(value[1])
            return "slept"
        if value == "seen":
            return self.seen
        self.count += 1
        self.seen.append(value)
        return [self.id, self.count]


class SlowToStop(Worker):
    """Traps exits and takes ``args["stop_after"]`` seconds to act on a shutdown."""

    async def init(self, ctx: Context, args: Any) -> None:
        await super().init(ctx, args)
        ctx.trap_exits = True
        self.stop_after = (args or {}).get("stop_after", 0.0)

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind.name == "EXIT":
            await trio.sleep(self.stop_after)
            ctx.stop("shutdown")
            return None
        return await super().handle(ctx, msg)
