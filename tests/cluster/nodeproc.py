"""One cluster node as its own OS process, for the multi-node tests.

``python -m tests.cluster.nodeproc --name b --cluster URL [--heartbeat S ...]`` starts a
node with the example components ``pinger``, ``echo`` and ``counter`` registered, and
three Python processes: ``echo`` (answers a call with its message; a cast
``["fwd", to, value]`` sends ``["echo", value]`` to ``to``), ``recorder`` (traps exits and
keeps every message it gets; the call ``"log"`` returns them, ``"hold"`` is never
answered) and ``ctl``, which does
what the test asks of this node (the calls below). It prints one JSON line with its
node id and these pids, then runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

import trio

import airssys_actors as aa
from airssys_actors._clusterconfig import ClusterConfig

COMPONENTS = Path(__file__).resolve().parents[2] / "examples" / "components"


def _entry(msg: aa.Message) -> list[Any]:
    return [msg.kind.name.lower(), msg.value, None if msg.sender is None else str(msg.sender)]


class Echo(aa.Actor):
    async def handle(self, ctx: aa.Context, msg: aa.Message) -> Any:
        if msg.kind == aa.Kind.CALL:
            return msg.value
        value = msg.value
        if isinstance(value, list) and len(value) == 3 and value[0] == "fwd":
            await ctx.send(value[1], ["echo", value[2]])
        return None


class Recorder(aa.Actor):
    """Traps exits; links to or monitors ``args`` (``{"link": pid}`` / ``{"monitor": pid}``)."""

    async def init(self, ctx: aa.Context, args: Any) -> None:
        ctx.trap_exits = True
        self.log: list[list[Any]] = []
        if isinstance(args, dict):
            if args.get("link"):
                ctx.link(args["link"])
            if args.get("monitor"):
                ctx.monitor(args["monitor"])

    async def handle(self, ctx: aa.Context, msg: aa.Message) -> Any:
        if msg.kind == aa.Kind.CALL and msg.value == "log":
            return self.log
        if msg.kind == aa.Kind.CALL and msg.value == "count":
            return len(self.log)
        if msg.kind == aa.Kind.CALL and msg.value == "hold":
            return aa.NOREPLY  # answered never: the caller waits
        self.log.append(_entry(msg))
        return None


class Sequence(aa.Actor):
    """Counts casts ``[sender_key, seq]``: per key, in order, no gap, no duplicate."""

    async def init(self, ctx: aa.Context, args: Any) -> None:
        self.next: dict[str, int] = {}
        self.received = 0
        self.errors: list[str] = []
        self.delay = float(args or 0)

    async def handle(self, ctx: aa.Context, msg: aa.Message) -> Any:
        if msg.kind == aa.Kind.CALL:
            return {"received": self.received, "errors": self.errors[:20], "next": self.next}
        key, seq = msg.value
        expected = self.next.get(key, 0)
        if seq != expected:
            self.errors.append(f"{key}: expected {expected}, got {seq}")
        self.next[key] = seq + 1
        self.received += 1
        if self.delay:
            await trio.sleep(self.delay)
        return None


class Control(aa.Actor):
    async def handle(self, ctx: aa.Context, msg: aa.Message) -> Any:
        if msg.kind != aa.Kind.CALL:
            return None
        op, *args = msg.value
        node = ctx.node
        if op == "recorder":  # ["recorder", {"link": pid} | {"monitor": pid} | None]
            return str(await node.spawn(Recorder, args=args[0]))
        if op == "sequence":  # ["sequence", delay, mailbox_capacity]
            return str(await node.spawn(Sequence, args=args[0], mailbox_capacity=args[1]))
        if op == "register":  # ["register", name, pid]
            try:
                await node.register_global(args[0], aa.Pid.parse(args[1]))
            except aa.NameTaken as exc:
                return ["taken", str(exc)]
            return "ok"
        if op == "whereis":
            pid = node.whereis_global(args[0])
            return None if pid is None else str(pid)
        if op == "kill":
            node.kill(args[0])
            return "ok"
        if op == "alive":
            return node.is_alive(args[0])
        if op == "nodes":
            return node.cluster_nodes()
        return ["error", f"unknown op {op!r}"]


async def main(args: argparse.Namespace) -> None:
    config = ClusterConfig(args.cluster, heartbeat=args.heartbeat, suspect_after=args.suspect_after,
                           down_after=args.down_after, window=args.window, user=args.user, password=args.password)
    async with aa.Node(args.name, cluster=config) as node:
        # A process of these spawned from another node may message anyone, spawn nothing.
        anyone = aa.Capabilities(send=["*"])
        for name in ("pinger", "echo", "counter"):
            node.register_component(aa.Component.load(COMPONENTS / f"{name}.wat"), name, capabilities=anyone)
        pids = {"node": node.node_id}
        for label, actor in (("echo", Echo), ("recorder", Recorder), ("ctl", Control)):
            pids[label] = str(await node.spawn(actor))
        print(json.dumps(pids), flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--suspect-after", type=float, default=0.25)
    parser.add_argument("--down-after", type=float, default=0.5)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    trio.run(main, parser.parse_args())
    sys.exit(0)
