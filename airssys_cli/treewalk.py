"""The live supervision tree as plain data, read through the supervisors' public API:
what `airssys tree`, `airssys ps`, the metrics page and the demo show."""

from __future__ import annotations

from typing import Any

from airssys_actors import Pid
from supervisors import SupervisorRef


async def walk(node: Any, ref: SupervisorRef) -> dict[str, Any]:
    """The live tree under ``ref``, with each process's version, mailbox and restarts.
    Each supervisor is read a page at a time (a reply per page, within the message
    limit), however many children it has."""
    info = _process(node, ref.pid)
    children = []
    async for row in ref.children():
        entry: dict[str, Any] = {
            "id": row.id, "pid": row.pid, "type": row.type, "name": row.name,
            "component": row.component, "version": row.version, "restarts": row.restarts,
            "restart": row.restart, "last_reason": row.last_reason,
        }
        if row.pid is not None:
            entry.update(_process(node, row.pid))
        if row.type == "supervisor" and row.pid is not None:
            try:
                sub = await ref.child(row.id)
            except Exception:
                sub = None
            if sub is not None:
                entry["strategy"] = sub.spec.strategy
                entry["children"] = (await walk(node, sub))["children"]
        children.append(entry)
    return {"id": ref.spec.id, "pid": ref.pid, "type": "supervisor", "strategy": ref.spec.strategy,
            "name": ref.spec.name, **info, "children": children}


def _process(node: Any, pid: Pid) -> dict[str, Any]:
    try:
        info = node.process_info(pid)
    except Exception:
        return {"alive": False}
    return {"alive": True, "mailbox": info["mailbox"], "messages_in": info["messages_in"],
            "fuel_used": info.get("fuel_used"), "memory_bytes": info.get("memory_bytes")}


def restarts_by_pid(tree: dict[str, Any], into: dict[str, int] | None = None) -> dict[str, int]:
    """How often each running child in ``tree`` (from :func:`walk`) was restarted, by pid."""
    into = {} if into is None else into
    for child in tree.get("children", []):
        if child.get("pid") is not None:
            into[str(child["pid"])] = child["restarts"]
        restarts_by_pid(child, into)
    return into
