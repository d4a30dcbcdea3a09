"""Restart intensity: at most ``max_restarts`` restarts in any ``within``-second window.

A list of monotonic timestamps; no timers. Entries older than the window fall off the
left as time goes on, so the window slides.
"""

from __future__ import annotations

from collections import deque


class RestartWindow:
    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        """Record a restart at ``now``; False if that is one too many (give up)."""
        times = self._times
        times.append(now)
        while times and times[0] < now - self.within:
            times.popleft()
        return len(times) <= self.max_restarts

    def __len__(self) -> int:
        return len(self._times)
