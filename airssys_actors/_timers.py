"""Timers for a whole node: one task and one heap, however many timers are set.

A timer runs a callback at its deadline unless cancelled first. Callbacks are
synchronous and must not block (they deliver a message).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import trio


class TimerService:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._dead = 0
        """Heap entries whose timer was cancelled (dropped lazily, or all at once when
        they are over half the heap: call timeouts are set and cancelled at a high rate)."""
        self._ids = itertools.count(1)
        self._changed = trio.Event()

    def __len__(self) -> int:
        return len(self._callbacks)

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` after ``delay`` seconds; returns the timer id."""
        return self.schedule_at(trio.current_time() + max(0.0, delay), callback)

    def schedule_at(self, deadline: float, callback: Callable[[], None]) -> int:
        """Run ``callback`` at ``deadline`` (trio's clock); returns the timer id."""
        timer = next(self._ids)
        self._callbacks[timer] = callback
        if not self._heap or deadline < self._heap[0][0]:
            self._changed.set()
        heapq.heappush(self._heap, (deadline, timer))
        return timer

    def cancel(self, timer: int) -> bool:
        """Cancel a pending timer; False if it already fired or never existed."""
        if self._callbacks.pop(timer, None) is None:
            return False
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
