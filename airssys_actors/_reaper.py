"""Releasing what dead processes held, off the path from a crash to its restart.

Closing a wasmtime store takes about 15 µs. A process that dies must first tell its
links and monitors (so that its supervisor can restart it), and nothing is gained by
making that restart wait for the dead instance's cleanup. So the dead instance is
handed here and released when the node next has nothing else to run, or at once when
``backlog`` releases are already waiting (a node that is never idle still frees them,
as they die).

Looking for an idle moment is not free: while a task waits in trio's
``wait_all_tasks_blocked``, every scheduler pass of the node checks on it (a few
microseconds of every restart, measured on a node that never idles). So the reaper looks for
``watch`` seconds at a time and, when the node stayed busy all that time, rests for
``rest`` seconds before looking again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio
import trio.testing


class Reaper:
    """Deferred release callbacks of one node, run when the node is idle."""

    def __init__(self, backlog: int = 64, watch: float = 0.002, rest: float = 0.05) -> None:
        self._pending: deque[Callable[[], None]] = deque()
        self._backlog = backlog
        self._watch = watch
        self._rest = rest
        self._work: trio.Event | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def retire(self, release: Callable[[], None]) -> None:
        """Call ``release`` soon: when the node is idle, or now if it is closed."""
        if self._closed:
            release()
            return
        if len(self._pending) >= self._backlog:
            # A node that is never idle: release this one now. The one that just died
            # is the cheapest to release (its memory is still in the CPU's caches);
            # those already waiting keep waiting for an idle moment.
            release()
            return
        self._pending.append(release)
        if self._work is not None:
            self._work.set()

    async def run(self) -> None:
        """The node's reaper task; releases whatever is left when cancelled."""
        try:
            while True:
                if not self._pending:
                    self._work = trio.Event()
                    await self._work.wait()
                with trio.move_on_after(self._watch) as looking:
                    # Idle: every other task of the node is waiting for something.
                    await trio.testing.wait_all_tasks_blocked()
                if looking.cancelled_caught:
                    await trio.sleep(self._rest)  # busy: stop taxing its passes a while
                    continue
                self.release_all()
        finally:
            self.release_all()

    def release_all(self) -> None:
        while self._pending:
            self._pending.popleft()()

    def close(self) -> None:
        """Release everything; later retirements are released at once."""
        self._closed = True
        self.release_all()
