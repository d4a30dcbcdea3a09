"""Process identifiers: node-qualified, so a pid names one process across a cluster."""

from __future__ import annotations

import re

import attrs

_PID_TEXT = re.compile(r"^<([^<>\s]+)\.(\d+)>$")


@attrs.frozen(order=True)
class Pid:
    """A process identifier: the node it lives on and a number unique on that node.

    Rendered as ``<node.42>`` (``<a:18f3c2b1a9e4.42>`` on a cluster node); that text is
    how guests see addresses, and :meth:`parse` reads it back.
    """

    node: str
    """The node: its name, and on a cluster node ``:`` and the incarnation (hex), fresh
    per boot, so a pid of a node that died never names a process of its next run."""
    id: int

    def __str__(self) -> str:
        return f"<{self.node}.{self.id}>"

    @classmethod
    def parse(cls, text: str) -> Pid | None:
        """The pid ``text`` renders, or None if it is not pid text (e.g. a name)."""
        match = _PID_TEXT.match(text)
        if match is None:
            return None
        return cls(match.group(1), int(match.group(2)))


def node_name(node: str) -> str:
    """The name part of a pid's ``node`` (``"a"`` for ``"a:18f3c2b1"``)."""
    return node.partition(":")[0]


def incarnation(node: str) -> int:
    """The incarnation part of a pid's ``node`` (0 for a node outside any cluster)."""
    text = node.partition(":")[2]
    try:
        return int(text, 16) if text else 0
    except ValueError:
        return 0


def is_valid_name(name: str) -> bool:
    """Names are non-empty text that cannot be mistaken for a pid."""
    return bool(name) and not name.startswith("<") and len(name) <= 255
