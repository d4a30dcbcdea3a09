"""Waking the one task that waits for something: a mailbox's receiver, a caller.

trio's ``ParkingLot`` and ``Event`` keep a queue of any number of waiters, which every
park and wake pays for (an ordered dict, a generator, a list). A mailbox has one
receiver and a call one caller, and both are on the path of every message, so they
hold the waiting task directly and reschedule it.
"""

from __future__ import annotations

import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled


class Wakeup:
    """At most one waiting task, woken by :meth:`wake` (a wake with no waiter is lost)."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: Task | None = None

    @property
    def waiting(self) -> bool:
        return self._task is not None

    async def wait(self) -> None:
        """Park until :meth:`wake` (a checkpoint: cancellation ends the wait)."""
        if self._task is not None:
            raise RuntimeError("another task is already waiting here")
        self._task = current_task()
        await wait_task_rescheduled(self._abort)

    def _abort(self, _: object) -> Abort:
        self._task = None
        return Abort.SUCCEEDED

    def wake(self) -> None:
        task = self._task
        if task is not None:
            self._task = None
            reschedule(task)


class OneShot(Wakeup):
    """A :class:`Wakeup` that stays set once fired, like a ``trio.Event`` with one waiter."""

    __slots__ = ("fired",)

    def __init__(self) -> None:
        super().__init__()
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self.wake()

    async def wait(self) -> None:
        if self.fired:
            await trio.lowlevel.checkpoint()
            return
        await super().wait()
