"""Process identifiers: node-qualified, so a pid names one process across a cluster."""

from __future__ import annotations

import re

import attrs

_PID_TEXT = re.compile(r"^<([^<>\s]+)\.(\d+)>$")


@attrs.frozen(order=True)
class Pid:
    """A process identifier: the node it lives on and a number unique on that node.

    Rendered as ``<node.42>``; that text is how guests see addresses.
    """

    node: str
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


def is_valid_name(name: str) -> bool:
    """Names are non-empty text that cannot be mistaken for a pid."""
    return bool(name) and not name.startswith("<") and len(name) <= 255
