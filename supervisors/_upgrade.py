"""A supervised code change across one or many processes (OTP's release handler).

For each process: make the new instance (before the pause, as OTP loads new code before
``sys:suspend``), suspend (its current message finishes, new ones queue), migrate its
state into the new version (``snapshot`` then ``upgrade``), swap under the same pid and
name, resume. The new component was compiled and checked against the world before any
process is suspended.

``atomic`` (the default) keeps every affected process suspended until all have migrated,
then commits them all; any failure rolls every one of them back, so the change is
all-or-nothing and no message is handled by a version that is then undone. ``rolling``
changes one process at a time and stops at the first failure (those done stay done).
``canary=N`` changes N processes first, checks each answers ``probe``, and only then the
rest; a failing canary is changed back.
"""

from __future__ import annotations

import time
from typing import Any
from collections.abc import Callable

import attrs
import trio

from airssys_actors import CallFailed, CallTimeout, Component, Node, NoSuchProcess, Pid, PreloadedCode, UpgradeFailed

STRATEGIES = ("atomic", "rolling")
#: Seconds an atomic change may hold the node's thread before it lets the other tasks
#: run. A scheduler pass there lies inside the pause of every process suspended so far,
#: so it is taken once per slice, not after every process (a rolling change takes one
#: after each process, outside the pauses).
ATOMIC_SLICE = 0.001
#: Seconds the canaries of a failed or cancelled change have to go back to their old
#: version (each is suspended between two messages, which a guest reaches within its
#: fuel or deadline limit).
REVERT_TIMEOUT = 30.0


@attrs.frozen
class Target:
    """One process to change and who owns it."""

    pid: Pid
    owner: Pid
    """The supervisor whose child it is."""
    child: str
    """Its child id (a pid's text for a dynamic child)."""
    component: Component
    """The version it runs now."""
    new: Component
    """The version it changes to."""


@attrs.frozen
class ProcessUpgrade:
    """What happened to one process."""

    pid: Pid
    child: str
    from_version: str
    to_version: str
    pause: float
    """Seconds from suspend to resume."""
    state_bytes: int


@attrs.frozen
class UpgradeReport:
    """The outcome of one supervised code change."""

    target: str
    strategy: str
    processes: tuple[ProcessUpgrade, ...]
    seconds: float

    @property
    def max_pause(self) -> float:
        return max((p.pause for p in self.processes), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "strategy": self.strategy,
            "seconds": self.seconds,
            "processes": [
                {"pid": str(p.pid), "child": p.child, "from": p.from_version, "to": p.to_version,
                 "pause_ms": round(p.pause * 1000, 3), "state_bytes": p.state_bytes}
                for p in self.processes
            ],
        }


class Migration:
    """Runs one change; :attr:`done` lists the processes that now run their new version."""

    def __init__(self, node: Node, target: str, strategy: str, canary: int, probe: Any,
                 probe_timeout: float) -> None:
        # strategy, canary and probe_timeout were checked by SupervisorRef.upgrade (or set
        # by downgrade), the only way a request reaches a supervisor (handoffs cannot be
        # forged).
        self.node = node
        self.target = target
        self.strategy = strategy
        self.canary = canary
        self.probe = probe
        self.probe_timeout = probe_timeout
        self.done: list[tuple[Target, ProcessUpgrade]] = []
        self._started = time.perf_counter()

    def report(self) -> UpgradeReport:
        return UpgradeReport(self.target, self.strategy, tuple(p for _, p in self.done),
                             time.perf_counter() - self._started)

    def _fail(self, exc: UpgradeFailed, target: Target | None = None) -> UpgradeFailed:
        """The error to raise: it names the process by its child id, with the report."""
        process = exc.process if target is None else target.child
        return UpgradeFailed(process, exc.cause, exc.detail, report=self.report())

    async def run(self, targets: list[Target]) -> UpgradeReport:
        """Change ``targets``. Whatever ends it (a failure, a cancellation), every process
        is resumed, every new instance not committed is closed, and :attr:`done` lists
        exactly the processes that run their new version."""
        canaries, rest = targets[: self.canary], targets[self.canary:]
        passed = not canaries
        try:
            if canaries:
                await self._rolling(canaries)
                await self._check_canaries(canaries)
                passed = True
            if self.strategy == "rolling":
                await self._rolling(rest)
            else:
                await self._atomic(rest)
        except BaseException:
            # Canaries that did not pass go back, and under all-or-nothing so do those
            # that passed (a rolling change keeps what it finished).
            if canaries and (not passed or self.strategy == "atomic"):
                with trio.CancelScope(shield=True, deadline=trio.current_time() + REVERT_TIMEOUT):
                    await self._revert_canaries(canaries)
            raise
        return self.report()

    async def _suspend(self, target: Target) -> float:
        started = time.perf_counter()
        try:
            await self.node.suspend(target.pid)
        except NoSuchProcess:
            raise UpgradeFailed(target.child, "noproc", "the process exited before it could be changed") from None
        except RuntimeError as exc:  # another change holds it suspended
            raise UpgradeFailed(target.child, "busy", str(exc)) from None
        return started

    def _record(self, target: Target, change: Any, started: float, ended: float) -> None:
        self.done.append((target, ProcessUpgrade(target.pid, target.child, change.from_version,
                                                 change.to_version, ended - started, change.state_size)))

    async def _preload(self, target: Target) -> PreloadedCode:
        """The new instance, made before the process is suspended (outside its pause; a
        threaded guest's in a worker thread)."""
        try:
            return await self.node.preload_code_change_async(target.pid, target.new)
        except UpgradeFailed as exc:
            raise self._fail(exc, target) from None

    async def _rolling(self, targets: list[Target]) -> None:
        node = self.node
        clock = time.perf_counter
        for target in targets:
            preloaded = await self._preload(target)
            try:
                try:
                    started = await self._suspend(target)
                except UpgradeFailed as exc:
                    raise self._fail(exc, target) from None
                try:
                    change = await node.prepare_code_change_async(target.pid, target.new, defer_free=True,
                                                                  preloaded=preloaded)
                except UpgradeFailed as exc:
                    node.resume(target.pid)
                    raise self._fail(exc, target) from None
                except BaseException:
                    node.resume(target.pid)  # the old version goes on, whatever went wrong
                    raise
            finally:
                preloaded.close()  # only if the change did not take it
            # Inside the pause only what needs the process suspended.
            change.swap()
            node.resume(target.pid)
            ended = clock()
            change.announce()  # before the process takes a message
            try:
                # Suspending a process waiting for mail does not let the node run: it does
                # here, between two pauses, and before the report and closing the replaced
                # instance, so that the process's queued messages do not wait for those.
                await trio.lowlevel.checkpoint()
            finally:
                self._record(target, change, started, ended)
                change.release_old()

    async def _atomic(self, targets: list[Target]) -> None:
        node = self.node
        clock = time.perf_counter
        suspended: list[tuple[Target, float]] = []
        changes: list[Any] = []
        preloads: list[PreloadedCode] = []
        current: Target | None = None
        last = targets[-1] if targets else None
        try:
            # Every new instance first, so that the processes are suspended only for as
            # long as their states take to move (the first one waits for all of them).
            for current in targets:
                preloads.append(await self._preload(current))
            held_since = clock()
            for current, preloaded in zip(targets, preloads, strict=True):
                if suspended and clock() - held_since >= ATOMIC_SLICE:
                    # Let the rest of the node run between two migrations (the suspended
                    # processes wait meanwhile, but the node is not held for the whole change).
                    await trio.lowlevel.checkpoint()
                    held_since = clock()
                suspended.append((current, await self._suspend(current)))
                # Each migration's values are freed at once (inside every pause so far,
                # but then an atomic change holds one process's worth at a time, not all),
                # except the last one's, freed once every process is resumed.
                changes.append(await node.prepare_code_change_async(current.pid, current.new,
                                                                    defer_free=current is last, preloaded=preloaded))
            for target, _ in suspended:
                if not node.is_alive(target.pid):
                    # It died while the others migrated: nothing is committed.
                    current = target
                    raise UpgradeFailed(target.child, "noproc", "the process exited during the change")
        except UpgradeFailed as exc:
            for change in changes:
                change.rollback()
            for target, _ in suspended:
                node.resume(target.pid)
            raise self._fail(exc, current) from None
        except BaseException:
            for change in changes:
                change.rollback()
            for target, _ in suspended:
                node.resume(target.pid)
            raise
        finally:
            for preloaded in preloads:
                preloaded.close()  # those no change took (after a failure)
        # Swap and resume each in turn, the bookkeeping once all are resumed.
        ended: list[float] = []
        for (target, _), change in zip(suspended, changes, strict=True):
            change.swap()
            node.resume(target.pid)
            ended.append(clock())
        for change in changes:
            change.announce()  # before the processes take a message
        try:
            # The resumed processes run before the report and closing the replaced
            # instances (the longest part of this), which then take slices too.
            await trio.lowlevel.checkpoint()
        finally:
            # Committed whatever comes next (even a cancellation): they are done.
            for (target, started), change, end in zip(suspended, changes, ended, strict=True):
                self._record(target, change, started, end)
        try:
            held_since = clock()
            for change in changes:
                change.release_old()
                if clock() - held_since >= ATOMIC_SLICE:
                    await trio.lowlevel.checkpoint()
                    held_since = clock()
        finally:
            for change in changes:
                change.release_old()  # all of them, even if cancelled meanwhile

    async def _check_canaries(self, canaries: list[Target]) -> None:
        for target in canaries:
            try:
                if self.probe is None:
                    if not self.node.is_alive(target.pid):
                        raise NoSuchProcess(target.pid)
                else:
                    await self.node.call(target.pid, self.probe, timeout=self.probe_timeout)
            except (CallFailed, CallTimeout, NoSuchProcess) as exc:
                await self._revert_canaries(canaries)
                raise self._fail(UpgradeFailed(target.child, "probe_failed",
                                               f"the canary did not answer the probe: {exc}"), target) from None

    async def _revert_canaries(self, canaries: list[Target]) -> None:
        """Change the canaries that are still alive back to the version they had. One
        that cannot go back stays in :attr:`done` (it runs the new version)."""
        gone: list[Target] = []  # back to the old version, or exited
        try:
            for target, _ in list(self.done):
                if target not in canaries:
                    continue
                if not self.node.is_alive(target.pid):
                    gone.append(target)  # it crashed; its supervisor restarts it with the old spec
                    continue
                back = attrs.evolve(target, component=target.new, new=target.component)
                try:
                    await self._suspend(back)
                except UpgradeFailed:
                    if not self.node.is_alive(target.pid):
                        gone.append(target)
                    continue
                try:
                    self.node.prepare_code_change(back.pid, back.new).commit()
                    gone.append(target)
                except UpgradeFailed:
                    pass
                finally:
                    self.node.resume(back.pid)
        finally:
            self.done = [(t, record) for t, record in self.done if t not in gone]


def load_component(component: Any, version: str | None) -> Component:
    """Compile and check the new version before anything is suspended."""
    if isinstance(component, Component):
        if version is not None and version != component.version:
            return attrs.evolve(component, version=version)
        return component
    return Component.load(component, version=version)


PickNew = Callable[[Component], Component]
