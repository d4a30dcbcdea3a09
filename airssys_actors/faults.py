"""Fault injection into a running node, and a reproducible chaos scheduler.

Each fault goes through the same path a real one would: an injected trap, fuel
exhaustion or stall ends the process with the exit reason a real one gives, on the
message it was about to handle (which becomes a dead letter, its caller is told at
once), so supervisors react exactly as they would in production.

    faults = node.faults
    faults.kill("worker-3")                  # untrappable, reason killed
    faults.trap_next("worker-3")             # next message: reason trap
    faults.exhaust_fuel("worker-3")          # next message runs out of fuel: out_of_fuel
    faults.stall("worker-3")                 # next message passes its deadline: deadline
    faults.exceed_memory("worker-3")         # next message: memory_limit
    faults.fail_next_init("worker-3")        # the next process started under that name fails init
    faults.delay("worker-3", 0.5, count=10)  # the next 10 messages arrive 0.5 s late
    faults.drop("worker-3", count=10)        # the next 10 messages are dropped (dead letters)
    faults.clear()                           # disarm whatever has not fired yet

    async with chaos(node, "workers/*", rate=100, seed=7) as scheduler: ...
"""

from __future__ import annotations

import fnmatch
import random
from collections import Counter
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import AsyncIterator, Callable

import attrs
import trio

from ._checks import InvalidType, InvalidValue, finite_number, finite_seconds, positive_int, shown
from ._errors import NoSuchProcess
from ._message import Envelope, Kind
from ._pid import Pid
from ._reasons import NOPROC, ExitReason

if TYPE_CHECKING:
    from ._process import Process
    from ._registry import Registry
    from ._timers import TimerService


class FaultHost(Protocol):
    """What fault injection needs of a node (a :class:`~airssys_actors.Node` is one;
    named here so that this module need not import the node, which imports it)."""

    faults: Faults
    timers: TimerService
    registry: Registry
    _processes: dict[Pid, Process]

    def _resolve(self, to: Pid | str) -> Process | None: ...
    def _fail_call(self, ref: int, reason: ExitReason, where: object) -> None: ...
    def _dead_letter(self, to: object, env: Envelope, reason: str, size: int | None = None) -> None: ...
    def kill(self, pid: Pid | str) -> None: ...
    def registered(self) -> dict[str, Pid]: ...

KINDS = ("kill", "trap", "fuel", "deadline", "memory", "init", "delay", "drop")
"""Every fault kind, as ``inject`` and the CLI name them."""

DEFAULT_MIX = {"kill": 1, "trap": 3, "fuel": 1, "deadline": 1, "memory": 1, "init": 1, "delay": 1, "drop": 1}

#: The exit reason an injected per-message fault ends the process with.
MESSAGE_FAULTS = {
    "trap": ExitReason("trap", "injected fault: trap"),
    "fuel": ExitReason("out_of_fuel", "injected fault: all fuel consumed"),
    "deadline": ExitReason("deadline", "injected fault: deadline exceeded"),
    "memory": ExitReason("memory_limit", "injected fault: memory limit exceeded"),
}
DROPPED = ExitReason("noconnection", "message dropped by fault injection")
NODE_STOPPED = ExitReason("shutdown", "node_stopped: the node stopped before a delayed message was delivered")
"""What the caller of a call held back by an injected delay gets if the node stops first."""


def _check_target(target: object) -> None:
    if not isinstance(target, (Pid, str)):
        raise InvalidType("target", target, "a Pid or a registered name")


class Faults:
    """The fault injector of one node (``node.faults``)."""

    def __init__(self, node: FaultHost) -> None:
        self._node = node
        self._init_failures: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    @staticmethod
    def reason_of(kind: str) -> ExitReason:
        """The exit reason an injected per-message fault of ``kind`` gives."""
        return MESSAGE_FAULTS[kind]

    def _proc(self, target: Pid | str) -> Process:
        _check_target(target)
        proc = self._node._resolve(target)
        if proc is None or not proc.alive:
            raise NoSuchProcess(target)
        return proc

    def kill(self, target: Pid | str) -> None:
        """Kill it now (untrappable): reason ``killed``."""
        _check_target(target)
        self._node.kill(target)
        self.injected["kill"] += 1

    def _arm(self, target: Pid | str, kind: str) -> None:
        self._proc(target).fault = kind
        self.injected[kind] += 1

    def trap_next(self, target: Pid | str) -> None:
        """Its next message traps: reason ``trap``."""
        self._arm(target, "trap")

    def exhaust_fuel(self, target: Pid | str) -> None:
        """Its next message runs out of fuel: reason ``out_of_fuel``."""
        self._arm(target, "fuel")

    def stall(self, target: Pid | str) -> None:
        """Its next message runs past its deadline: reason ``deadline``."""
        self._arm(target, "deadline")

    def exceed_memory(self, target: Pid | str) -> None:
        """Its next message exceeds the memory limit: reason ``memory_limit``."""
        self._arm(target, "memory")

    def fail_next_init(self, name: str, times: int = 1) -> None:
        """The next ``times`` processes started under ``name`` fail ``init``."""
        if not isinstance(name, str) or not name:
            raise InvalidType("name", name, "a registered name (a non-empty str)")
        times = positive_int("times", times)
        self._init_failures[name] += times
        self.injected["init"] += 1

    def _take_init_failure(self, name: str | None) -> bool:
        if name is not None and self._init_failures.get(name, 0) > 0:
            self._init_failures[name] -= 1
            return True
        return False

    def _intercept(self, target: Pid | str, count: int, take: Callable[[Envelope], None]) -> None:
        """Hand the next ``count`` envelopes for ``target`` to ``take`` instead of its mailbox.

        Faults armed on the same mailbox queue up: each takes its ``count`` envelopes once
        the one armed before it is used up (a later fault never cancels an earlier one)."""
        mailbox = self._proc(target).mailbox
        queue = getattr(mailbox.intercept, "queue", None)
        if queue is None:
            queue = []

            def intercept(env: Envelope) -> bool:
                while queue:
                    entry = queue[0]
                    if entry[0] > 0:
                        entry[0] -= 1
                        entry[1](env)
                        return True
                    queue.pop(0)
                mailbox.intercept = None
                return False

            intercept.queue = queue  # type: ignore[attr-defined]
            mailbox.intercept = intercept
        queue.append([count, take])

    def delay(self, target: Pid | str, seconds: float, count: int = 1) -> None:
        """Its next ``count`` messages are delivered ``seconds`` late (in order).

        A message still held back when the node stops becomes a dead letter with reason
        ``node_stopped`` (a delayed call fails at once with that reason)."""
        seconds = finite_seconds("seconds", seconds)
        count = positive_int("count", count)
        mailbox = self._proc(target).mailbox
        node = self._node

        def later(env: Envelope) -> None:
            def deliver() -> None:
                try:
                    mailbox.put_nowait(env, bypass=True)
                except Exception as exc:  # closed or full by then: accounted, not lost
                    if env.kind == Kind.CALL:  # and its caller is told now, not at its timeout
                        node._fail_call(env.ref, NOPROC, target)
                    node._dead_letter(target, env, f"delayed: {type(exc).__name__}")

            def node_stopped() -> None:
                if env.kind == Kind.CALL:
                    node._fail_call(env.ref, NODE_STOPPED, target)
                node._dead_letter(target, env, "node_stopped")

            if node.timers.closed:  # the node has stopped: nothing will fire any more
                node_stopped()
            else:
                node.timers.schedule(seconds, deliver, node_stopped)

        self._intercept(target, count, later)
        self.injected["delay"] += 1

    def drop(self, target: Pid | str, count: int = 1) -> None:
        """Its next ``count`` messages are dropped: each becomes a dead letter and a
        dropped call fails at once with reason ``noconnection``."""
        count = positive_int("count", count)
        node = self._node

        def lose(env: Envelope) -> None:
            if env.kind == Kind.CALL:
                node._fail_call(env.ref, DROPPED, target)
            node._dead_letter(target, env, str(DROPPED))

        self._intercept(target, count, lose)
        self.injected["drop"] += 1

    def clear(self, target: Pid | str | None = None) -> None:
        """Disarm faults armed but not triggered yet (on ``target``, or everywhere):
        per-message faults, delays and drops. Pending init failures are forgotten too."""
        if target is not None:
            _check_target(target)
        procs = list(self._node._processes.values()) if target is None else [self._proc(target)]
        for proc in procs:
            proc.fault = None
            proc.mailbox.intercept = None
        if target is None:
            self._init_failures.clear()

    def inject(self, target: Pid | str, kind: str, *, seconds: float = 0.05, count: int = 1) -> None:
        """Inject a fault by kind name (one of :data:`KINDS`). Every argument is checked
        first, whatever the kind: ``seconds`` finite and >= 0, ``count`` an int >= 1."""
        _check_target(target)
        if not isinstance(kind, str) or kind not in KINDS:
            raise InvalidValue("kind", kind, f"one of {', '.join(KINDS)}",
                               message=f"unknown fault {shown(kind)}: kind must be one of {', '.join(KINDS)}")
        seconds = finite_seconds("seconds", seconds)
        count = positive_int("count", count)
        if kind == "kill":
            self.kill(target)
        elif kind in MESSAGE_FAULTS:
            self._arm(target, kind)
        elif kind == "init":
            proc = self._proc(target)
            if proc.name is None:
                raise ValueError("an init fault needs a named process (it applies to its restart)")
            self.fail_next_init(proc.name)
            self.kill(target)
        elif kind == "delay":
            self.delay(target, seconds, count)
        elif kind == "drop":
            self.drop(target, count)
        else:
            raise ValueError(f"unknown fault {kind!r}; expected one of {', '.join(KINDS)}")


@attrs.frozen
class Injection:
    """One fault the chaos scheduler injected."""

    time: float
    kind: str
    target: str


class ChaosScheduler:
    """Injects a random mix of faults at ``rate`` per second into live processes whose
    registered name matches ``pattern``. Reproducible: the same seed over the same set of
    names gives the same sequence of (fault, target)."""

    def __init__(self, node: FaultHost, pattern: str, rate: float, *, mix: dict[str, float] | None = None,
                 seed: int = 0, delay: float = 0.05, count: int = 1) -> None:
        if not isinstance(pattern, str):
            raise InvalidType("pattern", pattern, "a name pattern (str)")
        rate = finite_number("rate", rate, exclusive=True, noun="number of faults per second")
        mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = set(mix) - set(KINDS)
        if unknown:
            raise InvalidValue("mix", sorted(unknown, key=str), f"fault kinds from {', '.join(KINDS)}",
                               message=f"unknown fault kinds in mix: {shown(sorted(unknown, key=str))}")
        for kind, weight in mix.items():
            finite_number(f"mix[{kind!r}]", weight, noun="weight")
        if not any(mix.values()):
            raise InvalidValue("mix", mix, "weights with at least one above 0")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidType("seed", seed, "an integer")
        self.node = node
        self.pattern = pattern
        self.rate = rate
        self.mix = mix
        self.random = random.Random(seed)
        self.delay = finite_seconds("delay", delay)
        self.count = positive_int("count", count)
        self.injections: list[Injection] = []
        self.skipped = 0
        self._names: list[str] = []
        self._names_key: tuple[int, float] = (-1, 0.0)

    def targets(self) -> list[str]:
        return sorted(n for n in self.node.registered() if fnmatch.fnmatchcase(n, self.pattern))

    def _candidates(self) -> list[str]:
        """The registered names that match, sorted; rebuilt when the number of registered
        names changes and at least once a second, not on every step (``targets()`` is
        O(N log N) in the node's names: ~1 ms per fault with 1,000 workers). A name whose
        process is restarting right now stays a candidate: picking it counts as a skip."""
        names = self.node.registry.names()
        now = trio.current_time()
        if len(names) != self._names_key[0] or now - self._names_key[1] > 1.0:
            self._names = sorted(n for n in names if fnmatch.fnmatchcase(n, self.pattern))
            self._names_key = (len(names), now)
        return self._names

    def step(self) -> Injection | None:
        """Inject one fault now (or count a skip when nothing matches)."""
        names = self._candidates()
        kinds = list(self.mix)
        kind = self.random.choices(kinds, weights=[self.mix[k] for k in kinds])[0]
        if not names:
            self.skipped += 1
            return None
        target = names[self.random.randrange(len(names))]
        try:
            self.node.faults.inject(target, kind, seconds=self.delay, count=self.count)
        except (NoSuchProcess, ValueError):
            self.skipped += 1
            return None
        injection = Injection(trio.current_time(), kind, target)
        self.injections.append(injection)
        return injection

    async def run(self, duration: float | None = None) -> None:
        """Inject at a steady rate for ``duration`` seconds (or until cancelled)."""
        if duration is not None:
            duration = finite_seconds("duration", duration)
        period = 1.0 / self.rate
        start = trio.current_time()
        n = 0
        while duration is None or trio.current_time() - start < duration:
            self.step()
            n += 1
            await trio.sleep_until(start + n * period)

    @property
    def counts(self) -> Counter[str]:
        return Counter(i.kind for i in self.injections)


@asynccontextmanager
async def chaos(node: FaultHost, pattern: str, rate: float, **options: Any) -> AsyncIterator[ChaosScheduler]:
    """Run a :class:`ChaosScheduler` for the duration of the block."""
    scheduler = ChaosScheduler(node, pattern, rate, **options)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        try:
            yield scheduler
        finally:
            nursery.cancel_scope.cancel()
