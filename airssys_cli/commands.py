"""What the control socket can be asked, run inside the node."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator

import trio

from airssys_actors import Component

from .control import ControlError, ControlServer
from .treewalk import restarts_by_pid, walk


async def cmd_tree(server: ControlServer) -> Any:
    return await walk(server.node, server.root)


async def cmd_ps(server: ControlServer) -> Any:
    restarts = restarts_by_pid(await walk(server.node, server.root))
    rows = []
    for info in server.node.processes():
        rows.append({
            "pid": info["pid"], "name": info["name"], "component": info["component"],
            "version": info["version"], "mailbox": info["mailbox"],
            "restarts": restarts.get(info["pid"], 0), "messages_in": info["messages_in"],
            "messages_out": info["messages_out"], "fuel_used": info.get("fuel_used"),
            "memory_bytes": info.get("memory_bytes"),  # None unless `run --track-memory`
            "handle_ms": round(info["handle_seconds"] * 1000, 3),
        })
    return rows


async def cmd_send(server: ControlServer, to: str, message: Any) -> Any:
    # Waits for room in a full mailbox as node.send does, but no longer than a client's
    # timeout: a client slot is not held for as long as the receiver is stuck.
    with trio.move_on_after(server.limits.timeout):
        await server.node.send(to, message)
        return "sent"
    raise ControlError(f"the mailbox of {to} stayed full for {server.limits.timeout:g} s: the message was not sent")


async def cmd_call(server: ControlServer, to: str, message: Any, timeout: float = 5.0) -> Any:
    return await server.node.call(to, message, timeout=timeout)


async def cmd_deploy(server: ControlServer, target: str, path: str, version: str | None = None,
                     strategy: str = "atomic", canary: int = 0, probe: Any = None) -> Any:
    file = Path(path)
    if not await trio.Path(file).is_file():
        raise ControlError(f"no such file: {path}")
    component = Component.load(file, version=version)
    report = await server.root.upgrade(target, component, strategy=strategy, canary=canary, probe=probe)
    return report.to_dict()


async def cmd_stats(server: ControlServer) -> Any:
    stats = server.node.statistics()
    return {"processes": stats.processes, "pending_calls": stats.pending_calls, "timers": stats.timers,
            "dead_letters": stats.dead_letters, "parked_mailboxes": stats.parked_mailboxes}


async def cmd_nodes(server: ControlServer) -> Any:
    """This node and the nodes of its cluster it knows (empty outside a cluster)."""
    return server.node.cluster_nodes()


def cmd_logs(server: ControlServer, follow: bool = True, history: int = 50) -> AsyncIterator[Any]:
    async def stream() -> AsyncIterator[Any]:
        sub = server.node.subscribe(maxlen=server.logs_backlog)  # a stalled reader holds at most this many
        try:
            for event in list(server.node.events.history)[-history:] if history else []:
                yield event.to_dict()
            if not follow:
                return
            while True:
                yield (await sub.get()).to_dict()
        except trio.EndOfChannel:
            return
        finally:
            sub.close()

    return stream()


async def cmd_inject(server: ControlServer, target: str, fault: str, seconds: float = 0.05, count: int = 1) -> Any:
    server.node.faults.inject(target, fault, seconds=seconds, count=count)
    return f"injected {fault} into {target}"


HANDLERS = {
    "tree": cmd_tree, "ps": cmd_ps, "send": cmd_send, "call": cmd_call, "deploy": cmd_deploy,
    "stats": cmd_stats, "nodes": cmd_nodes, "logs": cmd_logs, "inject": cmd_inject,
}
