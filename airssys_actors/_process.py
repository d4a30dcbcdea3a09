"""One process: a trio task that owns a mailbox and runs a behaviour (a WASM guest or a
Python actor) one message at a time.

The loop, in order:
  1. take the next message, system lane first (replies, DOWN, trapped exits, timers);
  2. hand it to the behaviour; for a ``call``, send the reply it returns (or remember the
     call as deferred when it returns none);
  3. exit when the behaviour asked to stop, or when handling failed.
Exit signals are applied when they are delivered: a lethal one cancels the process's
scope, so it takes effect at the process's next checkpoint even in the middle of an
awaiting Python handler. ``_terminate`` then tells links and monitors, answers pending
calls with the exit reason and records what is left as dead letters.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from typing import Any, Protocol

import trio

from ._codec import encode
from ._errors import SpawnFailed
from ._mailbox import Mailbox
from ._message import Envelope, Kind
from ._pid import Pid
from ._reasons import KILLED, NORMAL, ExitReason


class ProcessHost(Protocol):
    """What a process needs of the node that runs it (the node implements it; named
    here so that this module need not import the node, which imports this one)."""

    faults: Any

    def _call_pending(self, ref: int) -> bool: ...
    def _deliver_system(self, proc: Process, env: Envelope) -> None: ...
    def _on_started(self, proc: Process) -> None: ...
    def _on_exit(self, proc: Process, reason: ExitReason) -> None: ...
    def _complete_call(self, ref: int, payload: bytes, replier: Process) -> None: ...


#: The process whose task is running, so that code inside a Python actor can call node
#: functions (spawn with link, call) and be recognised as the sender.
current_process: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "airssys_current_process", default=None
)

_CHECKPOINT_EVERY = 64
_NO_SCOPE = contextlib.nullcontext()


class ProcessExit(Exception):
    """Raised by a behaviour to end its process with ``reason``."""

    def __init__(self, reason: ExitReason) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        # Made only when shown: a crash raises one of these on its way to the restart.
        return str(self.reason)


class Behaviour(Protocol):
    """What runs inside a process. ``init``/``handle`` may be coroutines when
    ``is_async``; failures raise :class:`ProcessExit`."""

    is_async: bool
    component: str | None
    version: str | None

    def init(self, proc: Process, args: bytes) -> Any: ...
    def handle(self, proc: Process, env: Envelope) -> Any: ...
    def terminate(self, proc: Process, reason: ExitReason) -> None: ...
    def info(self) -> dict[str, Any]: ...


class Process:
    """The runtime's record of one live process. Users hold pids, not these."""

    # Slots: a node makes and drops these at a high rate (restarts), and every object
    # less per process is less for the cyclic garbage collector to walk.
    __slots__ = (
        "_done",
        "_idle",
        "_parked",
        "_resumed",
        "_scope",
        "_suspend_requested",
        "alive",
        "answered",
        "behaviour",
        "children",
        "current",
        "deferred",
        "deferred_prune_at",
        "exit_reason",
        "fault",
        "handle_seconds",
        "keep_mailbox",
        "links",
        "mailbox",
        "max_pending",
        "messages_in",
        "messages_out",
        "monitors",
        "name",
        "node",
        "parent",
        "pid",
        "requests",
        "started",
        "started_at",
        "stop_request",
        "suspended",
        "timers",
        "trap_exits",
        "watchers",
    )

    def __init__(
        self,
        node: ProcessHost,
        pid: Pid,
        behaviour: Behaviour,
        *,
        name: str | None,
        mailbox: Mailbox,
        trap_exits: bool,
        keep_mailbox: bool,
        parent: Pid | None,
    ) -> None:
        self.node = node
        self.pid = pid
        self.behaviour = behaviour
        self.name = name
        self.mailbox = mailbox
        self.trap_exits = trap_exits
        self.keep_mailbox = keep_mailbox
        self.parent = parent
        self.links: set[Pid] = set()
        self.monitors: dict[int, Pid] = {}
        """Monitors this process holds: ref -> target."""
        self.watchers: dict[int, Pid | None] = {}
        """Monitors on this process: ref -> watcher (None: a watcher outside any process)."""
        self.deferred: set[int] = set()
        """Calls it handled without replying yet."""
        self.deferred_prune_at = 0
        """Size of ``deferred`` past which refs whose callers gave up are forgotten."""
        self.answered = 0
        """The ref of the call being handled once it was answered from inside the handler
        (``reply`` before returning none); 0 otherwise."""
        self.requests: set[int] = set()
        """Requests it made that are not answered yet."""
        self.timers: set[int] = set()
        self.children: set[Pid] = set()
        self.current: Envelope | None = None
        self.alive = True
        self.started = False
        self.exit_reason: ExitReason | None = None
        self.stop_request: ExitReason | None = None
        self.started_at = time.time()
        self.messages_in = 0
        self.messages_out = 0
        self.handle_seconds = 0.0
        self._done: trio.Event | None = None  # made when someone waits for the end
        # Only a process whose handlers await needs a scope to be interrupted by an exit
        # signal; a synchronous one only ever waits for mail (or for a resume), and
        # ``die`` wakes it there. Entering a scope is a real cost on every (re)start.
        self._scope: trio.CancelScope | None = trio.CancelScope() if behaviour.is_async else None
        self.max_pending = getattr(getattr(behaviour, "limits", None), "max_pending", 10_000)
        """Outstanding requests and monitors it may hold at once."""
        self.fault: str | None = None
        """A fault armed by ``node.faults`` for the next message."""
        self.suspended = False
        self._parked = False
        """True while the loop waits for mail: it takes nothing before checking for a
        suspension again, so suspend() need not wait for it to acknowledge."""
        self._suspend_requested = False
        self._idle: trio.Event | None = None  # created by suspend(), only when needed
        self._resumed: trio.Event | None = None

    def __repr__(self) -> str:
        return f"<Process {self.pid} name={self.name!r}>"

    async def wait_done(self) -> None:
        """Return once the process has ended (its exit fully handled)."""
        if self._done is None:
            self._done = trio.Event()
            if not self.alive:
                self._done.set()
        await self._done.wait()

    # -- signals ----------------------------------------------------------------------

    def die(self, reason: ExitReason) -> None:
        """End this process with ``reason`` at its next checkpoint. A kill overrides a
        reason already pending (a process still finishing a handler after a shutdown)."""
        if self.alive and (self.exit_reason is None or reason == KILLED):
            self.exit_reason = reason
            if self._scope is not None:
                self._scope.cancel()
            else:
                # The loop checks exit_reason before taking each message.
                self.mailbox.wake()
                if self._resumed is not None:
                    self._resumed.set()

    def exit_signal(self, sender: Pid | None, reason: ExitReason, *, untrappable: bool = False) -> None:
        """Apply an exit signal from ``sender`` (a link breaking, or ``Node.exit``)."""
        if not self.alive:
            return
        if untrappable:
            self.die(KILLED)
            interrupt = getattr(self.behaviour, "interrupt", None)
            if interrupt is not None:
                interrupt()
        elif self.trap_exits:
            self.node._deliver_system(self, Envelope(Kind.EXIT, 0, sender, encode(reason.to_wire())))
        elif reason != NORMAL or sender == self.pid:
            self.die(reason)

    # -- the task ---------------------------------------------------------------------

    def init_inline(self, args: bytes) -> ExitReason | None:
        """Run a synchronous behaviour's ``init`` now, in the caller's task; None when it
        succeeded (the process counts as started), else the reason it failed. The task
        started afterwards with ``run(..., initialized=True)`` goes straight to the loop."""
        token = current_process.set(self)
        try:
            if self.node.faults._take_init_failure(self.name):
                return ExitReason("error", "injected fault: init failed")
            self.behaviour.init(self, args)
        except ProcessExit as exc:
            return exc.reason
        except Exception as exc:  # a host-layer failure: the process did not start either
            return ExitReason("error", repr(exc))
        finally:
            current_process.reset(token)
        self.started = True
        self.node._on_started(self)
        return None

    async def run(self, args: bytes, report_init_failure: bool, initialized: bool = False,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        current_process.set(self)
        reason = NORMAL
        init_failed = False
        try:
            with self._scope or _NO_SCOPE:
                if not initialized:
                    try:
                        if self.node.faults._take_init_failure(self.name):
                            raise ProcessExit(ExitReason("error", "injected fault: init failed"))
                        result = self.behaviour.init(self, args)
                        if self.behaviour.is_async:
                            await result
                    except ProcessExit as exc:
                        reason, init_failed = exc.reason, True
                    else:
                        self.started = True
                        self.node._on_started(self)
                        task_status.started(self.pid)
                if not init_failed:
                    # init may already have asked to stop (OTP's {stop, Reason} from init).
                    reason = self.stop_request or await self._loop()
            if self.exit_reason is not None:
                reason = self.exit_reason
                init_failed = not self.started
        except BaseException as exc:
            # The node is being torn down (or a bug): end this process, then let it go on.
            cancelled = isinstance(exc, trio.Cancelled)
            reason = self.exit_reason or ExitReason("shutdown" if cancelled else "error", None if cancelled else repr(exc))
            self._terminate(reason)
            raise
        self._terminate(reason)
        if init_failed and report_init_failure:
            raise SpawnFailed(reason)

    async def _loop(self) -> ExitReason:
        mailbox = self.mailbox
        behaviour = self.behaviour
        is_async = behaviour.is_async
        node = self.node
        clock = time.perf_counter
        budget = 0
        while True:
            if self.exit_reason is not None:
                # An exit signal arrived while the last message was handled: take no more
                # (what is queued stays queued, for a kept mailbox's next owner).
                return self.exit_reason
            if self._suspend_requested:
                # Between two messages: acknowledge the suspension and wait. New
                # messages queue meanwhile (within the mailbox bound).
                self.suspended = True
                assert self._resumed is not None
                if self._idle is not None:  # None when suspend() found it waiting for mail
                    self._idle.set()
                await self._resumed.wait()
                self.suspended = False
                continue
            env = mailbox.get_nowait()
            if env is None:
                budget = 0
                self._parked = True
                try:
                    await mailbox.wait()
                finally:
                    self._parked = False
                continue
            self.current = env
            if self.fault is not None:
                reason = self._injected_fault()
                if reason is not None:
                    return reason
            started = clock()
            try:
                reply = behaviour.handle(self, env)
                if is_async:
                    reply = await reply
            except ProcessExit as exc:
                self.handle_seconds += clock() - started
                return exc.reason
            self.handle_seconds += clock() - started
            self.current = None
            self.messages_in += 1
            if env.kind == Kind.CALL:
                if reply is None:
                    # Answered already (a reply from inside the handler, or a reply refused
                    # as too large): nothing is left to defer, or the ref would stay forever.
                    if self.answered != env.ref:
                        self._defer(env.ref)
                    self.answered = 0
                else:
                    node._complete_call(env.ref, reply, self)
            if self.stop_request is not None:
                return self.stop_request
            budget += 1
            if budget >= _CHECKPOINT_EVERY:
                budget = 0
                await trio.lowlevel.checkpoint()

    def _defer(self, ref: int) -> None:
        """Remember a call handled without a reply, for a later one. A process that never
        answers, called in a loop with short timeouts, must not grow without bound: past
        ``max_pending`` deferred calls, those whose callers gave up are forgotten (a reply
        to one of them is then refused as a reply to no call). The next pruning waits
        until the set has doubled, so it costs O(1) per call amortised."""
        deferred = self.deferred
        deferred.add(ref)
        if len(deferred) > max(self.max_pending, self.deferred_prune_at):
            pending = self.node._call_pending
            self.deferred = {r for r in deferred if pending(r)}
            self.deferred_prune_at = 2 * len(self.deferred)

    def _terminate(self, reason: ExitReason) -> None:
        if not self.alive:
            return
        self.alive = False
        self.exit_reason = reason
        try:
            self.behaviour.terminate(self, reason)
        finally:
            self.node._on_exit(self, reason)
            if self._done is not None:
                self._done.set()
            if self._idle is not None:
                self._idle.set()  # a pending suspend() returns: there is nothing left to wait for

    def _injected_fault(self) -> ExitReason | None:
        """Apply the armed fault to the message about to be handled. A WASM guest gets
        the real thing where the host can cause it (no fuel, an expired deadline);
        otherwise the process ends with the reason a real fault gives."""
        kind, self.fault = self.fault, None
        arm = getattr(self.behaviour, "arm_fault", None)
        if arm is not None and arm(kind):
            return None
        return self.node.faults.reason_of(kind)

    # -- suspension (for code change) ---------------------------------------------------

    async def suspend(self) -> None:
        """Return once the process is between two messages and takes no more until
        :meth:`resume`. The message it is handling finishes first.

        A cancellation point, but a scheduling point only when the process is busy (it
        then has to finish its message): a scheduler pass here would lie inside the
        pause, so a code change that suspends many processes in a row decides itself
        when the rest of the node runs. Cancelled, it leaves the process running."""
        if self._suspend_requested:
            raise RuntimeError(f"{self.pid} is already suspended")
        self._suspend_requested = True
        self._resumed = trio.Event()
        if self._parked and self.alive:
            # Waiting for mail: when it wakes it sees the request before taking anything,
            # so there is no handshake to wait for (and no ``_idle`` event to set).
            self.suspended = True
            self._idle = None
            try:
                await trio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                self.resume()
                raise
            return
        self._idle = trio.Event()
        self.mailbox.wake()
        try:
            await self._idle.wait()  # set between two messages, or when the process ends
        except BaseException:
            # Cancelled before (or just as) it acknowledged: nobody would resume it.
            self.resume()
            raise

    def resume(self) -> None:
        self._suspend_requested = False
        self.suspended = False
        if self._resumed is not None:
            self._resumed.set()

    # -- introspection ----------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        stats = self.mailbox.statistics()
        return {
            "pid": str(self.pid),
            "name": self.name,
            "parent": None if self.parent is None else str(self.parent),
            "mailbox": stats.depth + stats.system_depth,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "handle_seconds": self.handle_seconds,
            "links": sorted(str(p) for p in self.links),
            "trap_exits": self.trap_exits,
            "suspended": self.suspended,
            "started_at": self.started_at,
            **self.behaviour.info(),
        }
