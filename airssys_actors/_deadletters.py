"""Dead letters: messages that could not be delivered or whose handling crashed their
process, kept (bounded) so that no message disappears without a trace."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import attrs

from ._codec import UndecodableMessage, decode
from ._message import KIND_OF, Envelope, Kind
from ._pid import Pid


@attrs.frozen
class DeadLetter:
    """A message that reached no handler, and why."""

    to: str
    """The address it was sent to."""
    sender: Pid | None
    kind: Kind
    ref: int
    payload: bytes
    reason: str
    """Why it is dead: the exit reason of the process that crashed on it or left it queued,
    ``noproc``, ``late_reply``, ``timer_target_gone``..."""
    time: float

    @property
    def value(self) -> Any:
        try:
            return decode(self.payload)
        except UndecodableMessage:
            return self.payload


class DeadLetters:
    """The last ``capacity`` dead letters of a node, plus a count of all of them."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: deque[DeadLetter] = deque(maxlen=capacity)
        self.total = 0

    def record(self, to: object, env: Envelope, reason: str) -> DeadLetter:
        letter = DeadLetter(str(to), env.sender, KIND_OF[env.kind], env.ref, env.payload, reason, time.time())
        self._items.append(letter)
        self.total += 1
        return letter

    def items(self) -> list[DeadLetter]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()
