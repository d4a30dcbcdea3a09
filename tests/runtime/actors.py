"""Small Python actors the runtime tests share."""

from __future__ import annotations

from typing import Any

import trio

from airssys_actors import NOREPLY, Actor, Context, Kind, Message


class Recorder(Actor):
    """Remembers every message; ``"log"`` returns them as [kind, sender, value] triples."""

    async def init(self, ctx: Context, args: Any) -> None:
        self.seen: list[list[Any]] = []
        if isinstance(args, dict) and args.get("trap_exits"):
            ctx.trap_exits = True

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind == Kind.CALL and msg.value == "log":
            return self.seen
        self.seen.append([msg.kind.name.lower(), None if msg.sender is None else str(msg.sender), msg.value])
        return "ok"


class Echo(Actor):
    async def handle(self, ctx: Context, msg: Message) -> Any:
        return msg.value


class Worker(Actor):
    """Commands: "crash" raises, "stop" stops, ["sleep", s] sleeps, ["defer", s] replies later."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        value = msg.value
        if value == "crash":
            raise RuntimeError("asked to crash")
        if value == "stop":
            ctx.stop("normal")
            return "stopping"
        if isinstance(value, list) and value[0] == "sleep":
            await trio.sleep(value[1])
            return "slept"
        if isinstance(value, list) and value[0] == "defer":
            ref = msg.ref
            ctx.send_after(ctx.pid, ["answer", ref], value[1])
            return NOREPLY
        if isinstance(value, list) and value[0] == "answer":
            ctx.reply(value[1], "deferred answer")
            return None
        if isinstance(value, list) and value[0] == "spawn_linked":
            return str(await ctx.spawn(Worker, link=True))
        if isinstance(value, list) and value[0] == "link":
            ctx.link(value[1])
            return "linked"
        if isinstance(value, list) and value[0] == "monitor":
            return ctx.monitor(value[1])
        return value


class FailingInit(Actor):
    async def init(self, ctx: Context, args: Any) -> None:
        raise ValueError("bad config")
