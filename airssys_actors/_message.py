"""What sits in a mailbox: an envelope with a kind, a reference, a sender and msgpack bytes.

The kinds and their numbers are the WIT ``kind`` variant's cases, in order.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ._codec import decode
from ._pid import Pid


class Kind(enum.IntEnum):
    """Why an envelope reached a process (the WIT ``kind`` variant)."""

    CAST = 0
    CALL = 1
    REPLY = 2
    FAILED = 3
    DOWN = 4
    EXIT = 5
    TIMER = 6


#: Kind by number, and each kind's lower-case name: a table lookup is several times
#: cheaper than calling the enum, and both are on the path of every exit.
KIND_OF: tuple[Kind, ...] = tuple(Kind)
KIND_NAME: tuple[str, ...] = tuple(k.name.lower() for k in Kind)


class Envelope:
    """A message in flight. Mutable and slotted because it is on the hot path; users
    see :class:`Message` instead."""

    __slots__ = ("kind", "payload", "ref", "sender")

    def __init__(self, kind: int, ref: int, sender: Pid | None, payload: bytes) -> None:
        self.kind = kind
        self.ref = ref
        self.sender = sender
        self.payload = payload

    def __repr__(self) -> str:
        return f"Envelope({Kind(self.kind).name}, ref={self.ref}, sender={self.sender}, {len(self.payload)} bytes)"


@attrs.frozen
class Message:
    """A message as a Python process receives it."""

    kind: Kind
    """cast, call, reply, failed, down, exit or timer."""
    ref: int
    """The call, request, monitor or timer reference (0 for cast and exit)."""
    sender: Pid | None
    """Who sent it (None when sent from outside any process)."""
    payload: bytes
    """The msgpack bytes, as sent."""

    @property
    def value(self) -> Any:
        """The payload decoded (raises ``UndecodableMessage`` for bytes that are not msgpack)."""
        return decode(self.payload)

    @classmethod
    def _from(cls, env: Envelope) -> Message:
        return cls(KIND_OF[env.kind], env.ref, env.sender, env.payload)
