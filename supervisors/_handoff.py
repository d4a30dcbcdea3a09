"""Python objects handed to a supervisor alongside one call, and back.

Specs, components, upgrade reports and exceptions are not msgpack values, and a
supervisor lives in the same Python process as its handles: the call message carries a
token and the objects travel here, while the message keeps the ordering with the exits
the supervisor handles.

A handoff belongs to one request. The caller opens it, and closes it when the request
ends, whatever ends it (a reply, an error, a timeout, a cancellation): nothing stays
behind. A token is 16 random bytes made for one supervisor, so no other process can
forge one or replay it to another supervisor (a guest or a control-socket client that
sends a token of its own gets an error reply). The supervisor writes its answer into
the handoff; a caller that gave up meanwhile simply never reads it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from airssys_actors import Pid

TOKEN_BYTES = 16

#: The handoffs of requests in progress, by token. Only open requests are here.
_OPEN: dict[bytes, Handoff] = {}


class Handoff:
    """The objects of one request to ``supervisor``: ``value`` in, ``result`` out."""

    __slots__ = ("_scope", "closed", "deadline", "result", "supervisor", "token", "value")

    def __init__(self, supervisor: Pid, value: Any, deadline: float) -> None:
        self.supervisor = supervisor
        self.value = value
        self.result: Any = None
        self.deadline = deadline
        """When the caller stops waiting (trio time)."""
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self.closed = False
        self._scope: trio.CancelScope | None = None

    def work_scope(self) -> trio.CancelScope:
        """A cancel scope for the supervisor's work on this request: cancelled at the
        caller's deadline, or as soon as the caller gives up (the request is closed)."""
        scope = trio.CancelScope(deadline=self.deadline)
        if self.closed:
            scope.cancel()
        self._scope = scope
        return scope

    def close(self) -> None:
        if _OPEN.get(self.token) is self:
            del _OPEN[self.token]
        self.closed = True
        self.value = None  # the request's objects go with it
        if self._scope is not None:
            self._scope.cancel()


@contextmanager
def open_handoff(supervisor: Pid, value: Any = None, timeout: float = 60.0) -> Iterator[Handoff]:
    """A handoff for one request to ``supervisor``, closed when the block ends."""
    handoff = Handoff(supervisor, value, trio.current_time() + timeout)
    _OPEN[handoff.token] = handoff
    try:
        yield handoff
    finally:
        handoff.close()


class NoHandoff(Exception):
    """A token that is not an open request to this supervisor."""


def take(token: object, supervisor: Pid) -> Handoff:
    """The open handoff ``token`` names for ``supervisor``; raises :class:`NoHandoff`."""
    handoff = _OPEN.get(token) if isinstance(token, bytes) and len(token) == TOKEN_BYTES else None
    if handoff is None or handoff.supervisor != supervisor:
        raise NoHandoff("not a request token from a Python caller on this node (or its caller gave up)")
    return handoff


def open_count() -> int:
    """How many requests with a handoff are in progress (for tests and statistics)."""
    return len(_OPEN)
