"""Human output: rich tables and trees. ``--json`` bypasses all of this."""

from __future__ import annotations

import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree


def tree_view(tree: dict[str, Any]) -> Tree:
    def label(node: dict[str, Any]) -> str:
        if node.get("type") == "supervisor":
            extra = f" [dim]{node.get('strategy', '')}[/dim]" if node.get("strategy") else ""
            pid = f" {node['pid']}" if node.get("pid") else " [red](not running)[/red]"
            return f"[bold cyan]{node['id']}[/bold cyan]{extra}{pid}"
        status = f"{node['pid']}" if node.get("pid") else "[red]not running[/red]"
        name = f" name={node['name']}" if node.get("name") else ""
        return (
            f"[bold]{node['id']}[/bold] {status}{name}  "
            f"[green]{node.get('component')}@{node.get('version')}[/green]  "
            f"mailbox={node.get('mailbox', '-')}  restarts={node.get('restarts', 0)}"
        )

    root = Tree(label(tree))

    def add(parent: Tree, node: dict[str, Any]) -> None:
        for child in node.get("children", []):
            add(parent.add(label(child)), child)

    add(root, tree)
    return root


NUMERIC_COLUMNS = frozenset({"mailbox", "restarts", "messages_in", "messages_out", "fuel_used", "memory", "handle_ms",
                             "pause_ms", "state_bytes"})


def table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None,
          caption: str | None = None) -> Table:
    out = Table(title=title, caption=caption, header_style="bold")
    for column in columns:
        out.add_column(column, justify="right" if column in NUMERIC_COLUMNS else "left")
    for row in rows:
        out.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
    return out


def size(n: int | None) -> str:
    """Bytes for people: ``"-"`` when not known (memory not tracked, Python processes)."""
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def deploy_report(report: dict[str, Any]) -> Table:
    rows = [{**p, "version": f"{p['from']} -> {p['to']}"} for p in report["processes"]]
    title = (f"deployed {report['target']} ({report['strategy']}): {len(rows)} processes in "
             f"{report['seconds'] * 1000:.1f} ms")
    return table(rows, ["child", "pid", "version", "pause_ms", "state_bytes"], title=title)


def event_line(event: dict[str, Any]) -> str:
    when = datetime.datetime.fromtimestamp(event["time"]).strftime("%H:%M:%S.%f")[:-3]
    who = event.get("name") or event.get("pid") or ""
    if event["kind"] == "dead_letter":
        who = f"to {event.get('to')} ({event.get('message_kind')})"
    parts = [when, f"{event['kind']:<18}", str(who)]
    if event.get("component"):
        parts.append(f"{event['component']}@{event.get('version')}")
    if event.get("reason"):
        parts.append(f"reason={event['reason']}")
    if event.get("message"):
        parts.append(str(event["message"]))
    return "  ".join(parts)


def console(stderr: bool = False) -> Console:
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        # Piped or captured: do not squeeze tables into 80 columns.
        out = Console(stderr=stderr, highlight=False, soft_wrap=False, width=200)
    return out
