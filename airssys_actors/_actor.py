"""Python-native processes: a plain class with ``init`` and ``handle``, run in the same
mailbox, link, monitor and exit machinery as WASM guests. Supervisors are built on these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from ._codec import UndecodableMessage, decode, encode
from ._errors import ActorError, MessageTooLarge
from ._message import Envelope, Kind, Message
from ._pid import Pid
from ._process import ProcessExit
from ._reasons import ExitReason, parse

if TYPE_CHECKING:
    from ._process import Process


class _NoReply:
    _instance: _NoReply | None = None

    def __new__(cls) -> _NoReply:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOREPLY"


NOREPLY = _NoReply()
"""Return this from ``Actor.handle`` for a call you will answer later with
``ctx.reply(msg.ref, value)`` (OTP's ``{noreply, State}``)."""


class Actor:
    """Base class for processes written in Python.

    Subclass it and override ``init`` and ``handle``; spawn it with
    ``await node.spawn(MyActor, args=...)`` (the class, or any zero-argument factory).
    ``handle``'s return value answers a ``call``; for other kinds it is ignored. An
    exception ends the process with reason ``error``.
    """

    async def init(self, ctx: Context, args: Any) -> None:
        """Set up state from ``args`` (already decoded). Raising fails the spawn."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        """Handle one message; for a call, the return value is the reply."""
        return None

    def terminate(self, ctx: Context, reason: ExitReason) -> None:
        """Called once when the process ends, whatever the reason. Must not block."""


class Context:
    """What a Python process uses to act: its own pid, messaging, links, timers."""

    def __init__(self, proc: Process) -> None:
        self._proc = proc

    @property
    def pid(self) -> Pid:
        return self._proc.pid

    @property
    def name(self) -> str | None:
        return self._proc.name

    @property
    def node(self) -> Any:
        """The :class:`~airssys_actors.Node` this process runs on (typed loosely: this
        module is below the node's, which imports it)."""
        return self._proc.node

    @property
    def trap_exits(self) -> bool:
        return self._proc.trap_exits

    @trap_exits.setter
    def trap_exits(self, value: bool) -> None:
        self._proc.trap_exits = bool(value)

    async def send(self, to: Pid | str, message: Any) -> None:
        await self.node.send(to, message)

    def send_nowait(self, to: Pid | str, message: Any) -> None:
        self.node.send_nowait(to, message)

    async def call(self, to: Pid | str, message: Any, timeout: float = 5.0) -> Any:
        return await self.node.call(to, message, timeout=timeout)

    def reply(self, ref: int, value: Any) -> None:
        """Answer a call this process received and returned ``NOREPLY`` for."""
        proc = self._proc
        if ref not in proc.deferred and not (proc.current is not None and proc.current.ref == ref):
            raise ActorError(f"this process has no call {ref} to answer")
        self.node._complete_call(ref, encode(value, self.node.max_message), proc)

    def link(self, target: Pid | str) -> None:
        self.node.link(target)

    def unlink(self, target: Pid | str) -> None:
        self.node.unlink(target)

    def monitor(self, target: Pid | str) -> int:
        return self.node.monitor(target)

    def demonitor(self, ref: int) -> None:
        self.node.demonitor(ref)

    async def spawn(self, component: Any, **options: Any) -> Pid:
        """Spawn a process (``link=True`` links it to this one)."""
        return await self.node.spawn(component, **options)

    def stop(self, reason: str | ExitReason = "normal") -> None:
        """Exit with ``reason`` once the current message is handled."""
        self._proc.stop_request = reason if isinstance(reason, ExitReason) else parse(reason)

    def send_after(self, to: Pid | str, message: Any, delay: float) -> int:
        return self.node.send_after(to, message, delay)

    def cancel_timer(self, timer: int) -> bool:
        return self.node.cancel_timer(timer)


class PythonBehaviour:
    """Runs an :class:`Actor` inside a process."""

    is_async = True

    def __init__(self, factory: Callable[[], Actor], label: str) -> None:
        self._factory = factory
        self.component = label
        self.version = "python"
        self.actor: Actor | None = None
        self.ctx: Context | None = None

    async def init(self, proc: Process, args: bytes) -> None:
        try:
            self.actor = self._factory()
            self.ctx = Context(proc)
            await self.actor.init(self.ctx, decode(args))
        except (Exception, UndecodableMessage) as exc:
            raise ProcessExit(_failure(exc)) from exc

    async def handle(self, proc: Process, env: Envelope) -> bytes | None:
        assert self.actor is not None and self.ctx is not None
        try:
            result = await self.actor.handle(self.ctx, Message._from(env))
            if env.kind != 1 or result is NOREPLY:
                return None
            try:
                return encode(result, proc.node.max_message)
            except MessageTooLarge as exc:
                # As for a guest's reply: refused, not truncated; the caller gets the
                # error, the reply is a dead letter, and the actor goes on.
                proc.node._fail_call_with(env.ref, exc, proc)
                proc.node._dead_letter(proc.pid, Envelope(Kind.REPLY, env.ref, proc.pid, b""), "reply_too_large")
                return None
        except ProcessExit:
            raise
        except Exception as exc:
            raise ProcessExit(_failure(exc)) from exc

    def terminate(self, proc: Process, reason: ExitReason) -> None:
        actor, ctx = self.actor, self.ctx
        # Let go of both: the context holds the process, which holds this behaviour, a
        # cycle the garbage collector would otherwise have to find at every exit.
        self.actor = self.ctx = None
        if actor is not None and ctx is not None:
            try:
                actor.terminate(ctx, reason)
            except Exception:  # a failing terminate must not hide the exit
                pass

    def info(self) -> dict[str, Any]:
        # memory_bytes is a WASM guest's linear memory; a Python actor has none of its own.
        return {"component": self.component, "version": self.version, "kind": "python", "memory_bytes": None}


def _failure(exc: BaseException) -> ExitReason:
    return ExitReason("error", f"{type(exc).__name__}: {exc}")
