"""Exit reasons: why a process ended, as values.

``normal`` and ``shutdown`` end quietly: links ignore ``normal`` unless trapping, and
supervisors treat both as a clean stop. ``killed`` cannot be trapped. ``error`` means the
guest returned ``err`` from an export, ``trap`` that it trapped (the message is kept).
The resource limits add ``out_of_fuel``, ``deadline``, ``memory_limit`` and
``message_too_large`` (a guest returned more than can be copied out of it). A guest's
``stop(reason)`` with any other text gives an ``exit`` reason carrying that text.
A process that floods its own system lane (see ``_mailbox.py``) ends with
``system_limit``, as Erlang's ``system_limit``.

A reason's ``detail`` is text a guest chose (its ``err`` text, its ``stop`` reason) or
wasmtime made, and it is copied into every link, monitor, dead letter, event and
supervisor that hears of the exit: it is capped at :data:`MAX_DETAIL_BYTES` bytes of
UTF-8 by :func:`bounded_text`, truncated with a marker that keeps the original size.
"""

from __future__ import annotations

from typing import Any

import attrs

KINDS = (
    "normal", "shutdown", "killed", "noproc", "error", "trap", "exit",
    "out_of_fuel", "deadline", "memory_limit", "message_too_large", "noconnection",
    "system_limit",
)

#: The most bytes (UTF-8) of guest- or wasmtime-made text kept anywhere: an exit
#: reason's detail, a log line, a string in an event's data.
MAX_DETAIL_BYTES = 4096
#: The most bytes of a reason as text (``str(reason)``, ``kind: detail``), as events and
#: dead letters keep it: a capped detail and the longest kind fit whole.
MAX_REASON_TEXT = MAX_DETAIL_BYTES + 32


def _marker(size: int) -> str:
    return f"...[truncated, {size} bytes]"


def bounded_prefix(prefix: bytes, size: int, limit: int = MAX_DETAIL_BYTES) -> str:
    """Text of at most ``limit`` UTF-8 bytes from the first bytes (``prefix``) of a text
    of ``size`` bytes: the whole text when it fits, else a prefix cut at a character
    boundary and a marker with ``size``. Lets a reader copy only ``limit`` bytes of a
    text that may be 64 MiB long."""
    if size <= limit and len(prefix) >= size:
        return prefix[:size].decode("utf-8", "replace")
    marker = _marker(size)
    keep = max(0, limit - len(marker.encode()))
    return prefix[:keep].decode("utf-8", "ignore") + marker


def bounded_text(text: str, limit: int = MAX_DETAIL_BYTES) -> str:
    """``text`` if it is at most ``limit`` bytes of UTF-8, else its prefix and the
    marker ``...[truncated, N bytes]`` (N its size in UTF-8), ``limit`` bytes in all."""
    if len(text) <= limit // 4:  # at most 4 bytes per character: fits whatever it holds
        return text
    head = text[:limit].encode("utf-8", "surrogatepass")
    if len(text) <= limit and len(head) <= limit:
        return text
    # Only a text over the limit pays for measuring it; an ASCII one (the usual) does not
    # even copy it to find its size.
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return bounded_prefix(head, size, limit)


def _bounded_detail(detail: object) -> str | None:
    if detail is None:
        return None
    return bounded_text(detail if isinstance(detail, str) else str(detail))


@attrs.frozen
class ExitReason:
    """Why a process exited."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    """One of :data:`KINDS`."""
    detail: str | None = attrs.field(default=None, converter=_bounded_detail)
    """The guest's error text, the trap message, or a custom reason's text (at most
    :data:`MAX_DETAIL_BYTES` bytes: see :func:`bounded_text`)."""

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
