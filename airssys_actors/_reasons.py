"""Exit reasons: why a process ended, as values.

``normal`` and ``shutdown`` end quietly: links ignore ``normal`` unless trapping, and
supervisors treat both as a clean stop. ``killed`` cannot be trapped. ``error`` means the
guest returned ``err`` from an export, ``trap`` that it trapped (the message is kept).
The resource limits add ``out_of_fuel``, ``deadline``, ``memory_limit`` and
``message_too_large`` (a guest returned more than can be copied out of it). A guest's
``stop(reason)`` with any other text gives an ``exit`` reason carrying that text.
"""

from __future__ import annotations

from typing import Any

import attrs

KINDS = (
    "normal", "shutdown", "killed", "noproc", "error", "trap", "exit",
    "out_of_fuel", "deadline", "memory_limit", "message_too_large", "noconnection",
)


@attrs.frozen
class ExitReason:
    """Why a process exited."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    """One of :data:`KINDS`."""
    detail: str | None = None
    """The guest's error text, the trap message, or a custom reason's text."""

    @property
    def is_quiet(self) -> bool:
        """True for ``normal`` and ``shutdown``: a clean stop, not a failure."""
        return self.kind in ("normal", "shutdown")

    def to_wire(self) -> Any:
        """The msgpack form guests see: ``"normal"`` or ``["trap", "message"]``."""
        return self.kind if self.detail is None else [self.kind, self.detail]

    @classmethod
    def from_wire(cls, value: Any) -> ExitReason:
        if isinstance(value, str):
            return parse(value)
        if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] in KINDS:
            return cls(value[0], None if value[1] is None else str(value[1]))
        return cls("exit", repr(value))

    def __str__(self) -> str:
        return self.kind if self.detail is None else f"{self.kind}: {self.detail}"


NORMAL = ExitReason("normal")
SHUTDOWN = ExitReason("shutdown")
KILLED = ExitReason("killed")
NOPROC = ExitReason("noproc")


def parse(text: str) -> ExitReason:
    """The reason a guest's ``stop(text)`` or a user's ``exit(pid, text)`` means."""
    if text in ("normal", "shutdown", "killed", "noproc"):
        return ExitReason(text)
    return ExitReason("exit", text)


def error(message: str) -> ExitReason:
    return ExitReason("error", message)


def trap(message: str) -> ExitReason:
    return ExitReason("trap", message)
