"""Calls: a call from Python awaiting its reply, a guest's ``request`` answered by a
message, and how each is answered (a reply, a failure, a timeout)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import trio

from ._checks import InvalidType, finite_seconds
from ._codec import decode, encode
from ._delivery import Delivery
from ._errors import ActorError, CallFailed, CallTimeout, MailboxFull, MessageTooLarge
from ._message import Envelope, Kind
from ._pid import Pid
from ._reasons import ExitReason
from ._waiters import RemoteCaller, _CallWaiter, _RequestWaiter

if TYPE_CHECKING:
    from ._process import Process
    from ._timers import TimerService


def _mark_answered(replier: Process, ref: int) -> None:
    """Note that the call ``replier`` is handling right now has its answer."""
    current = replier.current
    if current is not None and current.ref == ref and current.kind == Kind.CALL:
        replier.answered = ref


class Calls(Delivery):
    """Calls and their answers (a mixin of :class:`~airssys_actors.Node`)."""

    # Set by Node.__init__.
    max_message: int
    timers: TimerService
    _calls: dict[int, _CallWaiter | _RequestWaiter | RemoteCaller]
    _refs: itertools.count[int]

    async def call(self, to: Pid | str, message: Any, timeout: float = 5.0) -> Any:
        """Send ``message`` as a call and return the decoded reply.

        Raises:
            CallTimeout: no reply within ``timeout`` seconds.
            CallFailed: the process exited before replying (at once, not at the timeout).
            NoSuchProcess, UnencodableMessage, MessageTooLarge.
        """
        return decode(await self.call_bytes(to, encode(message, self.max_message), timeout))

    async def call_bytes(self, to: Pid | str, payload: bytes, timeout: float = 5.0) -> bytes:
        """:meth:`call` with msgpack bytes in and out (no encoding on this side)."""
        timeout = finite_seconds("timeout", timeout)
        if not isinstance(payload, (bytes, bytearray)):
            raise InvalidType("payload", payload, "bytes")
        if len(payload) > self.max_message:
            raise MessageTooLarge(len(payload), self.max_message)
        deadline = trio.current_time() + timeout
        ref = next(self._refs)
        waiter = _CallWaiter(to, deadline)
        env = Envelope(Kind.CALL, ref, self._sender(), payload)
        self._calls[ref] = waiter
        timer = 0
        try:
            try:
                self._deliver_nowait(to, env)
            except MailboxFull:
                # The timeout covers waiting for room in a full mailbox too.
                with trio.move_on_at(deadline) as waited:
                    await self._deliver(to, env)
                if waited.cancelled_caught:
                    raise CallTimeout(f"no reply from {to} within {timeout} s") from None
            self._count_out()
            # The node's timer heap, not a cancel scope: a call is on every hot path,
            # and a scope with a deadline costs several times more to enter and leave.
            timer = self.timers.schedule_at(deadline, waiter.fire)
            await waiter.wait()
        finally:
            self._calls.pop(ref, None)
            if timer:
                self.timers.cancel(timer)
        error = waiter.error
        if error is not None:
            # Raised without leaving a reference to it in this frame: the traceback holds
            # the frame, and frame -> error -> traceback would be a cycle for the garbage
            # collector to find, on every call that fails (every crash of a called process).
            waiter.error = None
            try:
                raise error
            finally:
                del error
        if waiter.payload is None:
            raise CallTimeout(f"no reply from {to} within {timeout} s")
        return waiter.payload

    def _call_pending(self, ref: int) -> bool:
        """Whether call ``ref`` still has a caller waiting (a caller on another node has
        no timer here: past its deadline it gave up, and is forgotten now)."""
        waiter = self._calls.get(ref)
        if waiter is None:
            return False
        if type(waiter) is RemoteCaller and waiter.deadline < trio.current_time():
            del self._calls[ref]
            waiter.peer.calls_in.discard(ref)
            return False
        return True

    def _complete_call(self, ref: int, payload: bytes, replier: Process) -> None:
        replier.deferred.discard(ref)
        _mark_answered(replier, ref)
        waiter = self._calls.pop(ref, None)
        if waiter is None:
            self._dead_letter("(caller gone)", Envelope(Kind.REPLY, ref, replier.pid, payload), "late_reply")
        elif isinstance(waiter, _CallWaiter):
            waiter.payload = payload
            waiter.fire()
        elif type(waiter) is RemoteCaller:
            waiter.remote.answer(waiter, ref, replier.pid, payload)
        else:
            self._answer_request(waiter, ref, replier.pid, payload)

    def _answer_request(self, waiter: _RequestWaiter, ref: int, replier: Pid | None, payload: bytes) -> None:
        self.timers.cancel(waiter.timer)
        waiter.proc.requests.discard(ref)
        if trio.current_time() > waiter.deadline:
            # The timer could not fire while an inline guest held the thread: the
            # request still times out, and the reply is late.
            self._deliver_system(waiter.proc, Envelope(Kind.FAILED, ref, None, encode("timeout")))
            self._dead_letter("(caller gone)", Envelope(Kind.REPLY, ref, replier, payload), "late_reply")
            return
        self._deliver_system(waiter.proc, Envelope(Kind.REPLY, ref, replier, payload))

    def _answer_call(self, ref: int, replier: Pid | None, payload: bytes) -> None:
        """The reply to a call of ours from a process on another node."""
        waiter = self._calls.pop(ref, None)
        if isinstance(waiter, _CallWaiter):
            waiter.payload = payload
            waiter.fire()
        elif isinstance(waiter, _RequestWaiter):
            self._answer_request(waiter, ref, replier, payload)

    def _fail_call(self, ref: int, reason: ExitReason, where: object) -> None:
        waiter = self._calls.pop(ref, None)
        if waiter is None:
            return
        if isinstance(waiter, _CallWaiter):
            waiter.error = CallFailed(where, reason)
            waiter.fire()
        elif type(waiter) is RemoteCaller:
            waiter.remote.answer(waiter, ref, None, None, ["exit", reason.to_wire()])
        else:
            self.timers.cancel(waiter.timer)
            waiter.proc.requests.discard(ref)
            self._deliver_system(waiter.proc, Envelope(Kind.FAILED, ref, None, encode(reason.to_wire())))

    def _fail_call_with(self, ref: int, error: Exception, replier: Process) -> None:
        """Answer a call with an error that is not an exit (e.g. its reply was too large)."""
        replier.deferred.discard(ref)
        _mark_answered(replier, ref)
        self._fail_call_error(ref, error, replier.pid)

    def _fail_call_error(self, ref: int, error: Exception, replier: Pid | None) -> None:
        waiter = self._calls.pop(ref, None)
        if isinstance(waiter, _CallWaiter):
            waiter.error = error
            waiter.fire()
        elif type(waiter) is RemoteCaller:
            waiter.remote.answer(waiter, ref, replier, None, ["error", str(error)])
        elif isinstance(waiter, _RequestWaiter):
            self.timers.cancel(waiter.timer)
            waiter.proc.requests.discard(ref)
            self._deliver_system(waiter.proc, Envelope(Kind.FAILED, ref, replier, encode(["error", str(error)])))

    def _request_from(self, proc: Process, to: str, payload: bytes, timeout: float) -> int:
        """A guest's ``request``: the reply comes back as a ``reply``/``failed`` message."""
        if len(proc.requests) >= proc.max_pending:
            raise ActorError(f"too many pending requests ({proc.max_pending})")
        ref = next(self._refs)
        waiter = _RequestWaiter(proc, to, trio.current_time() + timeout)
        self._calls[ref] = waiter
        try:
            self._deliver_nowait(to, Envelope(Kind.CALL, ref, proc.pid, payload))
        except BaseException:
            self._calls.pop(ref, None)
            raise
        proc.requests.add(ref)

        def expire() -> None:
            if self._calls.get(ref) is waiter:
                del self._calls[ref]
                proc.requests.discard(ref)
                self._deliver_system(proc, Envelope(Kind.FAILED, ref, None, encode("timeout")))

        waiter.timer = self.timers.schedule(timeout, expire)
        return ref
