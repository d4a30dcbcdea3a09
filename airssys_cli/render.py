"""Human output: rich tables and trees. ``--json`` bypasses all of this.

Names, ids, versions, reasons, log lines and replies come from guests and clients, so
every such text is shown through :func:`escape` (no control character, hence no
terminal escape sequence, reaches the terminal) and as a rich ``Text`` (so ``[bold]`` or
``[link=...]`` in it is shown, never interpreted as markup).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls (ESC, BEL, BS, CR, ...), DEL and the C1 controls (CSI, OSC, ... as single
# code points), plus the invisible format characters that reorder or hide text (bidi
# overrides and isolates, zero-width characters, line and paragraph separators).
_ESCAPES = {c: _NAMED.get(chr(c), f"\\x{c:02x}") for c in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({c: f"\\u{c:04x}" for c in [0xAD, *range(0x200B, 0x2010), 0x2028, 0x2029, *range(0x202A, 0x202F),
                                            *range(0x2060, 0x2070), 0xFEFF]})


def escape(text: Any) -> str:
    """``text`` (any value: its ``str``) with every control character written as an
    escape (``\\x1b``, ``\\n``, ``\\u202e``...), safe to print on a terminal."""
    return str(text).translate(_ESCAPES)


def plain(text: Any, style: str = "") -> Text:
    """Guest or client text for rich: escaped and never parsed as markup."""
    return Text(escape(text), style=style)


class EscapingFormatter(logging.Formatter):
    """Log records with control characters escaped (a guest's log line may carry any)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))


def tree_view(tree: dict[str, Any]) -> Tree:
    def label(node: dict[str, Any]) -> Text:
        if node.get("type") == "supervisor":
            return Text.assemble(
                plain(node.get("id"), "bold cyan"),
                *([" ", plain(node.get("strategy"), "dim")] if node.get("strategy") else []),
                " ", plain(node["pid"]) if node.get("pid") else Text("(not running)", style="red"),
            )
        return Text.assemble(
            plain(node.get("id"), "bold"), " ",
            plain(node["pid"]) if node.get("pid") else Text("not running", style="red"),
            *([" name=", plain(node["name"])] if node.get("name") else []), "  ",
            plain(f"{node.get('component')}@{node.get('version')}", "green"), "  ",
            plain(f"mailbox={node.get('mailbox', '-')}  restarts={node.get('restarts', 0)}"),
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
    out = Table(title=None if title is None else plain(title), caption=None if caption is None else plain(caption),
                header_style="bold")
    for column in columns:
        out.add_column(plain(column), justify="right" if column in NUMERIC_COLUMNS else "left")
    for row in rows:
        out.add_row(*[plain("" if row.get(c) is None else row.get(c)) for c in columns])
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
    """One event as one line of plain text (every field escaped: one event is one line)."""
    try:
        when = datetime.datetime.fromtimestamp(float(event.get("time"))).strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError, OverflowError, OSError):
        when = "--:--:--.---"
    who = event.get("name") or event.get("pid") or ""
    if event.get("kind") == "dead_letter":
        who = f"to {event.get('to')} ({event.get('message_kind')})"
    parts = [when, f"{escape(event.get('kind')):<18}", escape(who)]
    if event.get("component"):
        parts.append(escape(f"{event['component']}@{event.get('version')}"))
    if event.get("reason"):
        parts.append(escape(f"reason={event['reason']}"))
    if event.get("message"):
        parts.append(escape(event["message"]))
    return "  ".join(parts)


def console(stderr: bool = False) -> Console:
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal:
        # Piped or captured: do not squeeze tables into 80 columns.
        out = Console(stderr=stderr, highlight=False, soft_wrap=False, width=200)
    return out
