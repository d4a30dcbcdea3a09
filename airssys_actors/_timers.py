"""Timers for a whole node: one task and one heap, however many timers are set.

A timer runs a callback at its deadline unless cancelled first. Callbacks are
synchronous and must not block (they deliver a message). A timer that carries a message
also has an ``on_drop`` callback: :meth:`TimerService.close` (the node stopping) runs it
for each such timer still pending, so the message becomes a dead letter instead of
vanishing with the node.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import trio


class TimerService:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._dead = 0
        """Heap entries whose timer was cancelled (dropped lazily, or all at once when
        they are over half the heap: call timeouts are set and cancelled at a high rate)."""
        self._on_drop: dict[int, Callable[[], None]] = {}
        """For the pending timers that carry a message: what to do if the node stops first."""
        self._ids = itertools.count(1)
        self._changed = trio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._callbacks)

    def schedule(self, delay: float, callback: Callable[[], None],
                 on_drop: Callable[[], None] | None = None) -> int:
        """Run ``callback`` after ``delay`` seconds; returns the timer id. ``on_drop`` runs
        instead if the service is closed before then."""
        return self.schedule_at(trio.current_time() + max(0.0, delay), callback, on_drop)

    def schedule_at(self, deadline: float, callback: Callable[[], None],
                    on_drop: Callable[[], None] | None = None) -> int:
        """Run ``callback`` at ``deadline`` (trio's clock); returns the timer id."""
        # One comparison that refuses NaN too: a NaN in the heap would break its order.
        # Callers check their arguments (naming them); this only guards the heap.
        if not deadline < math.inf:
            raise ValueError(f"a timer's deadline must be finite, got {deadline}")
        timer = next(self._ids)
        self._callbacks[timer] = callback
        if on_drop is not None:
            self._on_drop[timer] = on_drop
        if not self._heap or deadline < self._heap[0][0]:
            self._changed.set()
        heapq.heappush(self._heap, (deadline, timer))
        return timer

    def cancel(self, timer: int) -> bool:
        """Cancel a pending timer; False if it already fired or never existed."""
        if self._callbacks.pop(timer, None) is None:
            return False
        if self._on_drop:
            self._on_drop.pop(timer, None)
        self._dead += 1
        if self._dead > 256 and 2 * self._dead > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[1] in self._callbacks]
            heapq.heapify(self._heap)
            self._dead = 0
        return True

    async def run(self) -> None:
        """Fire timers as they fall due, forever (cancel the enclosing scope to stop)."""
        while True:
            heap = self._heap
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, timer = heapq.heappop(heap)
                callback = self._callbacks.pop(timer, None)
                if callback is not None:
                    if self._on_drop:
                        self._on_drop.pop(timer, None)
                    callback()
                else:
                    self._dead -= 1
            # Drop cancelled entries at the top so we never sleep for a dead timer.
            while heap and heap[0][1] not in self._callbacks:
                heapq.heappop(heap)
                self._dead -= 1
            self._changed = trio.Event()
            deadline = heap[0][0] if heap else float("inf")
            with trio.move_on_at(deadline):
                await self._changed.wait()

    def close(self) -> int:
        """Stop: forget every pending timer, running the ``on_drop`` of each that has one
        (in deadline order); returns how many did. Timers are not run after this."""
        self.closed = True
        pending = sorted(entry for entry in self._heap if entry[1] in self._callbacks)
        drops = self._on_drop
        self._heap, self._callbacks, self._on_drop, self._dead = [], {}, {}, 0
        dropped = 0
        for _, timer in pending:
            on_drop = drops.get(timer)
            if on_drop is not None:
                on_drop()
                dropped += 1
        return dropped
