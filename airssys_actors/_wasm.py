"""WASM processes: a loaded :class:`Component` and the behaviour that runs one guest
instance per process, with the host functions it may call."""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
import wasmtime

from ._capabilities import Capabilities, Matcher
from ._errors import ActorError, InvalidComponent, MailboxFull, MessageTooLarge, NoConnection, NoSuchProcess, SpawnFailed
from ._host._component import compile_component
from ._host._layout import measure as measure_layout
from ._host._imports import HostRefused
from ._host._instance import GuestError, GuestInstance, GuestTrap, Limits, register_layout
from ._message import Envelope, Kind
from ._process import ProcessExit
from ._reasons import KILLED, ExitReason, bounded_text, parse

if TYPE_CHECKING:
    from wasmtime.component import Component as _Compiled

    from ._process import Process

log = logging.getLogger("airssys_actors.guest")


@attrs.frozen(eq=False)
class Component:
    """A compiled component that implements ``airssys:actor/process``.

    Load one with :meth:`load`; the same source is compiled once per Python process and
    the compiled artifact is cached on disk, so a second run starts without compiling.
    """

    name: str
    """What guests call it in ``spawn`` once registered on a node."""
    version: str
    """The label given at load time, or a short content hash."""
    digest: str
    """sha256 of the source bytes."""
    source: str | None
    """The file it came from, if any."""
    _compiled: _Compiled = attrs.field(repr=False)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | bytes, *, version: str | None = None, name: str | None = None) -> Component:
        """Load a component from a ``.wat``/``.wasm`` path or from raw bytes.

        Raises:
            InvalidComponent: corrupt bytes, WAT that does not parse (the message starts
                with ``FILE:LINE:COL:``, ``<wat>:LINE:COL:`` for bytes), a core module.
            ComponentWorldMismatch: a valid component that does not implement the world.
        """
        path: str | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            path = os.fspath(source)
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise InvalidComponent(f"cannot read {path}: {exc.strerror}") from None
        compiled, digest = compile_component(data, path)
        if getattr(compiled, "_airssys_layout", None) is None:
            # What an instance allocates (its memories and tables), for Limits.memory:
            # measured once per compiled component (the same source again skips it, as
            # it skips the WAT conversion). compile_component accepted the text already.
            binary = data if data[:4] == b"\0asm" else bytes(wasmtime.wat2wasm(data.decode("utf-8")))
            register_layout(compiled, measure_layout(binary))
        if name is None:
            name = Path(path).stem if path else f"component-{digest[:12]}"
        return cls(name=name, version=version or digest[:12], digest=digest, source=path, compiled=compiled)


class WasmBehaviour:
    """Runs one guest instance of a component inside a process.

    By default every call into the guest runs inline on the node's trio thread: the
    fastest path, but a long handler holds the node until it returns or hits its fuel or
    deadline limit. ``threaded=True`` runs each call in a worker thread instead (tens of
    microseconds more per message): the node keeps serving other processes meanwhile,
    a CPU-heavy guest can use another core, and ``kill`` interrupts a running handler.
    """

    def __init__(self, component: Component, limits: Limits, capabilities: Capabilities, *, threaded: bool = False) -> None:
        self.component_obj = component
        self.component = component.name
        self.version = component.version
        self.limits = limits
        self.capabilities = capabilities
        self.instance: GuestInstance | None = None
        self.threaded = threaded
        self.is_async = threaded
        self.killed = False
        """Set by :meth:`interrupt`: every instance made for this process from then on
        traps with ``killed`` at once."""
        self.trio_token: trio.lowlevel.TrioToken | None = None
        self.changing = False
        """A code change's guest part runs in a worker thread (it may use the instance)."""
        self._close_after_change = False
        self.starting: GuestInstance | None = None
        """An instance being made (and, for a code change, upgraded) in a worker thread,
        before it is :attr:`instance`: a kill must reach it too."""

    def init(self, proc: Process, args: bytes) -> Any:
        if len(args) > self.limits.max_message:
            raise ProcessExit(ExitReason("error", str(MessageTooLarge(len(args), self.limits.max_message))))
        if self.threaded:
            # Made here, on the trio thread: the bridge needs its token.
            self.trio_token = trio.lowlevel.current_trio_token()
            host = _TrioBridge(GuestHost(proc, self), self.trio_token)
            return self._in_thread(self._init, host, args, proc=proc)
        self._init(GuestHost(proc, self), args)
        return None

    def watch_starting(self, instance: GuestInstance) -> None:
        """Called (in the worker thread) once ``instance`` can be interrupted, before it
        runs any guest code."""
        self.starting = instance
        if self.killed:
            instance.interrupt()

    def _init(self, host: Any, args: bytes) -> None:
        try:
            instance = GuestInstance(self.component_obj._compiled, host, self.limits, interruptible=self.threaded,
                                     wasi=self.capabilities.wasi,
                                     watch=self.watch_starting if self.threaded else None)
            self.instance = instance
            self.starting = None
            instance.init(args)
        except GuestError as exc:
            raise ProcessExit(ExitReason("error", str(exc))) from None
        except GuestTrap as exc:
            raise ProcessExit(ExitReason(exc.kind, str(exc))) from None
        finally:
            self.starting = None

    async def run_guest_part(self, fn: Any, *args: Any) -> Any:
        """Run a code change's guest part ``fn(*args)`` in a worker thread. Cancelled,
        it interrupts the new instance (being made or upgraded), or, while the old one
        is in ``snapshot`` (which cannot be left halfway), the old one: the process is
        then killed. The old instance is closed only once ``fn`` is done with it."""
        self.changing = True
        try:
            return await self._in_thread(fn, *args, on_cancel=self._interrupt_change)
        finally:
            self.changing = False
            if self._close_after_change:
                self._close_after_change = False
                if self.instance is not None:
                    self.instance.close()

    def _interrupt_change(self) -> None:
        target = self.starting or self.instance
        if target is not None:
            target.interrupt()

    async def _in_thread(self, fn: Any, *args: Any, proc: Process | None = None, on_cancel: Any = None) -> Any:
        """Run ``fn(*args)`` in a worker thread and return what it returns. Never
        abandoned: the thread owns the store until the call returns. A cancellation
        (the spawner gave up, the node is going down) interrupts the guest instead, and
        is delivered once the call has trapped (at the next epoch tick)."""
        task = trio.lowlevel.current_task()
        token = trio.lowlevel.current_trio_token()

        def deliver(result: Any) -> None:
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        cancelled = False

        def abort(_raise_cancel: Any) -> Any:
            nonlocal cancelled
            # A graceful exit signal (shutdown) lets the call finish, within the
            # shutdown time, and its result stands: a kill then interrupts it
            # (Process.exit_signal).
            if proc is None or proc.exit_reason is None or proc.exit_reason == KILLED:
                cancelled = True
                (on_cancel or self.interrupt)()
            return trio.lowlevel.Abort.FAILED

        trio.lowlevel.start_thread_soon(functools.partial(fn, *args), deliver, name="airssys-guest")
        try:
            return await trio.lowlevel.wait_task_rescheduled(abort)
        finally:
            if cancelled:
                # The call was interrupted because of the cancellation: deliver it (a kill's lands
                # in the process's own scope; a spawner's or the node's goes on up).
                await trio.lowlevel.checkpoint()

    def arm_fault(self, kind: str) -> bool:
        """Make the next call hit a real limit (fuel, deadline); False if not possible."""
        if kind in ("fuel", "deadline") and self.instance is not None:
            self.instance.next_call_fault = kind
            return True
        return False

    def interrupt(self) -> None:
        """Stop a running threaded call at once, and any this process makes later (used
        by ``kill``): also while its instance is being made, initialised or upgraded."""
        self.killed = True
        for instance in (self.instance, self.starting):
            if instance is not None:
                instance.interrupt()

    def handle(self, proc: Process, env: Envelope) -> Any:
        if self.threaded:
            return self._in_thread(self._handle, proc, env, proc=proc)
        return self._handle(proc, env)

    def _handle(self, proc: Process, env: Envelope) -> bytes | None:
        instance = self.instance
        assert instance is not None
        sender = env.sender
        try:
            reply = instance.handle(env.kind, env.ref, None if sender is None else str(sender), env.payload)
        except GuestError as exc:
            raise ProcessExit(ExitReason("error", str(exc))) from None
        except GuestTrap as exc:
            raise ProcessExit(ExitReason(exc.kind, str(exc))) from None
        if reply is not None and len(reply) > self.limits.max_message:
            # Refused, not truncated: the caller gets the error, the process goes on.
            proc.node._fail_call_with(env.ref, MessageTooLarge(len(reply), self.limits.max_message), proc)
            proc.node._dead_letter(proc.pid, Envelope(Kind.REPLY, env.ref, proc.pid, reply[:0]), "reply_too_large")
            return None
        return reply

    def snapshot(self) -> bytes:
        assert self.instance is not None
        return self.instance.snapshot()

    def terminate(self, proc: Process, reason: ExitReason) -> None:
        if self.instance is not None:
            # The instance cannot be called again; its store is freed when the node is
            # idle, so that the exit (and a restart) does not wait for it.
            self.instance.closed = True
            if self.changing:
                # A code change's worker thread still uses it: closed when that ends.
                self._close_after_change = True
            else:
                proc.node.reaper.retire(self.instance.close)

    def info(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "version": self.version,
            "kind": "wasm",
            "fuel_used": None if self.instance is None else self.instance.fuel_used,
            # None unless memory tracking is on (see _host/_memory.py).
            "memory_bytes": None if self.instance is None else self.instance.memory_bytes(),
        }


@functools.lru_cache(maxsize=256)
def _matcher(patterns: tuple[str, ...]) -> Matcher:
    """One shared (immutable) Matcher per set of patterns: a Matcher and its frozenset
    per guest are two more objects for the cyclic GC to track, times every process and
    every restart. Bounded, for nodes that make capabilities per process."""
    return Matcher(patterns)


def _unreachable(exc: NoSuchProcess, to: str) -> str:
    """What a guest is told of a target it cannot reach: gone, or on a node out of reach."""
    return f"noconnection: {to}" if isinstance(exc, NoConnection) else f"noproc: {to}"


class GuestHost:
    """The host functions one guest calls, bound to its process (see ``wit/actor.wit``).

    Every call that reaches another process is checked against the process's
    capabilities; a denied call returns ``err`` and emits ``capability_denied``.
    """

    def __init__(self, proc: Process, behaviour: WasmBehaviour) -> None:
        self.proc = proc
        self.node = proc.node
        self.behaviour = behaviour
        self.caps = behaviour.capabilities
        self.max_message = behaviour.limits.max_message
        self._self_text = str(proc.pid)
        self._may_message = _matcher(self.caps.send)

    def _deny(self, what: str, target: str) -> HostRefused:
        proc = self.proc
        self.node.events.emit(
            "capability_denied", pid=proc.pid, name=proc.name, component=self.behaviour.component,
            version=self.behaviour.version, data={"import": what, "target": target},
        )
        return HostRefused(f"denied: {what} {target}")

    def _check_target(self, what: str, target: str) -> None:
        if self._may_message(target) or target == self._self_text or target == self.proc.name:
            return
        raise self._deny(what, target)

    def _check_size(self, payload: bytes) -> None:
        if len(payload) > self.max_message:
            raise HostRefused(str(MessageTooLarge(len(payload), self.max_message)))

    def self_address(self) -> str:
        return self._self_text

    def send(self, to: str, payload: bytes) -> None:
        self._check_target("send", to)
        self._check_size(payload)
        env = Envelope(Kind.CAST, 0, self.proc.pid, payload)
        try:
            self.node._deliver_nowait(to, env)
        except NoSuchProcess as exc:
            raise HostRefused(_unreachable(exc, to)) from None
        except MailboxFull:
            # A guest cannot wait for room; it is told, and the message is accounted for.
            self.node._dead_letter(to, env, "mailbox_full")
            raise HostRefused(f"mailbox full: {to}") from None
        self.proc.messages_out += 1

    def request(self, to: str, payload: bytes, timeout_ms: int) -> int:
        self._check_target("request", to)
        self._check_size(payload)
        try:
            ref = self.node._request_from(self.proc, to, payload, timeout_ms / 1000.0)
        except NoSuchProcess as exc:
            raise HostRefused(_unreachable(exc, to)) from None
        except MailboxFull:
            raise HostRefused(f"mailbox full: {to}") from None
        except ActorError as exc:
            raise HostRefused(str(exc)) from None
        self.proc.messages_out += 1
        return ref

    def send_after(self, to: str, payload: bytes, delay_ms: int) -> int:
        if len(self.proc.timers) >= self.caps.timers:
            raise self._deny("send-after", f"{to} (timer limit {self.caps.timers} reached)")
        self._check_target("send-after", to)
        self._check_size(payload)
        return self.node._send_after_bytes(self.proc, to, payload, delay_ms / 1000.0)

    def cancel_timer(self, timer: int) -> bool:
        if timer not in self.proc.timers:
            return False
        self.proc.timers.discard(timer)
        return self.node.timers.cancel(timer)

    def spawn(self, component: str, args: bytes) -> str:
        proc = self.proc
        if not self.caps.may_spawn(component) or len(proc.children) >= self.caps.max_children:
            raise self._deny("spawn", component)
        self._check_size(args)
        try:
            pid = self.node._spawn_from_guest(proc, component, args)
        except (InvalidComponent, SpawnFailed, ActorError) as exc:
            raise HostRefused(str(exc)) from None
        return str(pid)

    def link(self, target: str) -> None:
        self._check_target("link", target)
        self.node._link(self.proc, target)

    def monitor(self, target: str) -> int:
        self._check_target("monitor", target)
        try:
            return self.node._monitor(self.proc, target)
        except ActorError as exc:
            raise HostRefused(str(exc)) from None

    def stop(self, reason: str) -> None:
        self.proc.stop_request = parse(reason)

    def log(self, level: str, message: str) -> None:
        proc = self.proc
        message = bounded_text(message)
        event = self.node.events.emit(
            "log", pid=proc.pid, name=proc.name, component=self.behaviour.component,
            version=self.behaviour.version, data={"level": level, "message": message},
        )
        if event is not None:
            # Over the event bus's rate for log lines (NOISY_PER_SECOND), a line is only
            # counted (EventBus.suppressed): a guest cannot flood the host's logging either.
            log.log(_LOG_LEVELS.get(level, logging.INFO), "%s %s", proc.pid, message)

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def reply(self, call: int, payload: bytes) -> None:
        proc = self.proc
        current = proc.current
        if call not in proc.deferred and not (current is not None and current.kind == Kind.CALL and current.ref == call):
            raise HostRefused(f"no call {call} to answer")
        self._check_size(payload)
        self.node._complete_call(call, payload, proc)


class _TrioBridge:
    """Runs a GuestHost's methods on the trio thread for a guest running in a worker
    thread: node state is only ever touched from the trio thread. Called on the trio
    thread itself (an instance made or upgraded there), it calls them directly."""

    def __init__(self, host: GuestHost, token: trio.lowlevel.TrioToken) -> None:
        self._host = host
        self._token = token

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._host, name)
        token = self._token

        def call(*args: Any) -> Any:
            if trio.lowlevel.in_trio_run():
                return method(*args)
            return trio.from_thread.run_sync(method, *args, trio_token=token)

        return call


_LOG_LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}

