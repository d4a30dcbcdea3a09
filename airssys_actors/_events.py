"""The event stream: spawns, exits, restarts, escalations and everything else worth
observing, as timestamped records that tests, the CLI and benchmarks subscribe to."""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from collections.abc import AsyncIterator

import attrs
import trio

from ._bounded import RECORD_OVERHEAD, BoundedLog
from ._pid import Pid
from ._reasons import MAX_DETAIL_BYTES, MAX_REASON_TEXT, bounded_text


@attrs.frozen
class Event:
    """One thing that happened on a node."""

    kind: str
    """``spawn``, ``exit``, ``restart``, ``escalation``, ``give_up``, ``capability_denied``,
    ``dead_letter``, ``log``, ``upgrade``..."""
    time: float
    """Wall-clock seconds since the epoch."""
    pid: Pid | None = None
    name: str | None = None
    component: str | None = None
    version: str | None = None
    reason: str | None = None
    data: dict[str, Any] = attrs.field(factory=dict)
    """Anything else the kind carries."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            **self.data,  # first, so that it can never mask the fields below
            "kind": self.kind,
            "time": self.time,
            "pid": None if self.pid is None else str(self.pid),
            "name": self.name,
            "component": self.component,
            "version": self.version,
            "reason": self.reason,
        }


class Subscription:
    """A bounded queue of events for one subscriber. Iterate it with ``async for``.

    When a subscriber falls more than ``maxlen`` events behind, the oldest are dropped
    and counted in ``dropped``: a slow observer never slows the node down.
    """

    def __init__(self, bus: EventBus, kinds: frozenset[str] | None, maxlen: int) -> None:
        self._bus = bus
        self._kinds = kinds
        self._queue: deque[Event] = deque()
        self._maxlen = maxlen
        self._lot = trio.lowlevel.ParkingLot()
        self.dropped = 0
        self.closed = False

    def _push(self, event: Event) -> None:
        if self._kinds is not None and event.kind not in self._kinds:
            return
        if len(self._queue) >= self._maxlen:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._lot.unpark()

    def get_nowait(self) -> Event | None:
        return self._queue.popleft() if self._queue else None

    def drain(self) -> list[Event]:
        """Everything received so far, without waiting."""
        items = list(self._queue)
        self._queue.clear()
        return items

    async def get(self) -> Event:
        """The next event (waits for one)."""
        while not self._queue:
            if self.closed:
                raise trio.EndOfChannel
            await self._lot.park()
        return self._queue.popleft()

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> Event:
        """The next event satisfying ``predicate`` (events before it are consumed)."""
        with trio.fail_after(timeout):
            while True:
                event = await self.get()
                if predicate(event):
                    return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.get()
            except trio.EndOfChannel:
                return

    def close(self) -> None:
        self.closed = True
        self._bus._subscribers.discard(self)
        self._lot.unpark_all()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Kinds a guest can cause in bulk (a loop of refused host calls, log spam). Each is
#: capped at ``NOISY_PER_SECOND`` events per second; the rest are counted in
#: ``EventBus.suppressed`` instead, so a hostile guest cannot flood observers.
NOISY = frozenset({"dead_letter", "capability_denied", "log"})
NOISY_PER_SECOND = 1000


#: The most bytes the event history holds (strings and bytes of its events, plus
#: :data:`RECORD_OVERHEAD` each), besides its count.
HISTORY_BYTES = 16 << 20
_SHORT = MAX_DETAIL_BYTES // 4  # characters that fit the cap whatever they are


def _bounded_data(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``data`` with each string capped at MAX_DETAIL_BYTES and each bytes value at as
    many bytes, and roughly what it weighs. Only the top level is looked at: the node
    and supervisors put scalars there, and guest text arrives as strings."""
    size = 0
    capped: dict[str, Any] | None = None
    for key, value in data.items():
        if isinstance(value, str):
            if len(value) > _SHORT:
                short = bounded_text(value)
                if short is not value:
                    capped = capped if capped is not None else dict(data)
                    capped[key] = value = short
            size += len(value)
        elif isinstance(value, (bytes, bytearray)):
            if len(value) > MAX_DETAIL_BYTES:
                capped = capped if capped is not None else dict(data)
                capped[key] = value = bytes(value[:MAX_DETAIL_BYTES])
            size += len(value)
        size += len(key) + 16
    return (data if capped is None else capped), size


class EventBus:
    """Fan-out of events to subscribers, plus a bounded history of recent ones (at most
    ``history`` events and ``history_bytes`` bytes of them; each event's strings are
    capped at MAX_DETAIL_BYTES)."""

    def __init__(self, history: int = 10_000, history_bytes: int | None = HISTORY_BYTES) -> None:
        self._subscribers: set[Subscription] = set()
        self.history: BoundedLog[Event] = BoundedLog(history, history_bytes)
        self.suppressed: dict[str, int] = {}
        self._window: dict[str, tuple[int, int]] = {}

    def emit(self, kind: str, **fields: Any) -> Event | None:
        """Record an event; returns it, or None when a noisy kind is over its rate."""
        now = time.time()
        if kind in NOISY:
            second, count = self._window.get(kind, (0, 0))
            if int(now) != second:
                second, count = int(now), 0
            if count >= NOISY_PER_SECOND:
                self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
                return None
            self._window[kind] = (second, count + 1)
        # Weighed for the history's byte bound, and long text capped. Short strings (all
        # but guest text) cost a length check each: this is on the path of every exit.
        size = RECORD_OVERHEAD
        reason = fields.get("reason")
        if reason is not None:
            if len(reason) > _SHORT:
                fields["reason"] = reason = bounded_text(reason, MAX_REASON_TEXT)
            size += len(reason)
        data = fields.get("data")
        if data:
            text = 0
            for value in data.values():
                if value.__class__ is str or value.__class__ is bytes:
                    if len(value) > _SHORT:
                        fields["data"], text = _bounded_data(data)
                        break
                    text += len(value)
            size += text
        event = Event(kind=kind, time=now, **fields)
        self.history.append(event, size)
        if self._subscribers:
            for sub in tuple(self._subscribers):
                sub._push(event)
        return event

    def subscribe(self, kinds: set[str] | None = None, maxlen: int = 100_000) -> Subscription:
        sub = Subscription(self, None if kinds is None else frozenset(kinds), maxlen)
        self._subscribers.add(sub)
        return sub

    def close(self) -> None:
        for sub in tuple(self._subscribers):
            sub.close()
