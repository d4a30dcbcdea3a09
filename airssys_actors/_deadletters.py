"""Dead letters: messages that could not be delivered or whose handling crashed their
process, kept (bounded) so that no message disappears without a trace.

The store is bounded in count and in bytes: each letter keeps at most
:data:`PAYLOAD_PREFIX` bytes of its payload (and the payload's real ``size``), its reason
and address are capped like exit reasons, and the oldest letters go first once the store
holds ``max_bytes``. A guest that sends 1 MiB messages to a full mailbox in a loop thus
costs the node a few MiB at most, however long it goes on.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from ._bounded import RECORD_OVERHEAD, BoundedLog
from ._codec import UndecodableMessage, decode
from ._message import KIND_OF, Envelope, Kind
from ._pid import Pid
from ._reasons import MAX_DETAIL_BYTES, MAX_REASON_TEXT, bounded_text

#: The most bytes of a dead letter's payload that are kept.
PAYLOAD_PREFIX = 1024
#: The default byte budget of a node's dead letters (payload prefixes, reasons and
#: addresses, plus a fixed overhead per letter).
DEAD_LETTER_BYTES = 16 << 20
_SHORT = MAX_DETAIL_BYTES // 4  # characters that fit the cap whatever they are


@attrs.frozen
class DeadLetter:
    """A message that reached no handler, and why."""

    to: str
    """The address it was sent to."""
    sender: Pid | None
    kind: Kind
    ref: int
    payload: bytes
    """The payload's first :data:`PAYLOAD_PREFIX` bytes (all of it unless ``truncated``)."""
    reason: str
    """Why it is dead: the exit reason of the process that crashed on it or left it queued,
    ``noproc``, ``late_reply``, ``timer_target_gone``..."""
    time: float
    size: int
    """The payload's real size in bytes."""

    @property
    def truncated(self) -> bool:
        """True when only a prefix of the payload was kept."""
        return self.size > len(self.payload)

    @property
    def value(self) -> Any:
        """The payload decoded; the raw bytes when they do not decode (as a truncated
        payload's prefix usually does not)."""
        if self.truncated:
            return self.payload
        try:
            return decode(self.payload)
        except UndecodableMessage:
            return self.payload


class DeadLetters:
    """The last ``capacity`` dead letters of a node (and at most ``max_bytes`` of them;
    ``None``: no byte bound), plus a count of all of them."""

    def __init__(self, capacity: int = 10_000, max_bytes: int | None = DEAD_LETTER_BYTES) -> None:
        # (named as Node's parameters: that is where they come from)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"dead_letter_capacity must be an integer >= 0, got {capacity!r}")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
            raise ValueError(f"dead_letter_bytes must be None or an integer >= 0, got {max_bytes!r}")
        # Kept as plain tuples, made DeadLetters when asked for: a crash strands every
        # message queued for its process, and a tuple is several times cheaper to make.
        self._items: BoundedLog[tuple[Any, ...]] = BoundedLog(capacity, max_bytes)
        self.total = 0

    def record(self, to: object, env: Envelope, reason: str, size: int | None = None) -> str:
        """Record ``env`` as dead; returns the address as kept. ``size``: the payload's
        real size when ``env`` holds only its first bytes."""
        payload = env.payload
        if size is None:
            size = len(payload)
        if len(payload) > PAYLOAD_PREFIX:
            payload = payload[:PAYLOAD_PREFIX]  # a copy: the whole payload can be freed
        address = str(to)
        if len(address) > _SHORT:
            address = bounded_text(address)
        if len(reason) > _SHORT:
            reason = bounded_text(reason, MAX_REASON_TEXT)
        self._items.append((address, env.sender, env.kind, env.ref, payload, reason, time.time(), size),
                           RECORD_OVERHEAD + len(payload) + len(reason) + len(address))
        self.total += 1
        return address

    @property
    def bytes(self) -> int:
        """What the kept letters weigh, as counted against the byte budget."""
        return self._items.bytes

    def items(self) -> list[DeadLetter]:
        return [DeadLetter(to, sender, KIND_OF[kind], ref, payload, reason, when, size)
                for to, sender, kind, ref, payload, reason, when, size in self._items]

    def clear(self) -> None:
        self._items.clear()
