"""The waiters of calls in flight (``node._calls``): a caller in Python, a process's own
``request``, and a caller on another node. Values the call paths share, with no
behaviour of their own beyond being woken."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._wakeup import OneShot

if TYPE_CHECKING:
    from ._pid import Pid
    from ._process import Process


class _CallWaiter(OneShot):
    """A caller in Python awaiting a reply (fired by the reply, a failure or the timeout)."""

    __slots__ = ("deadline", "error", "payload", "target")

    def __init__(self, target: object, deadline: float = 0.0) -> None:
        super().__init__()
        self.payload: bytes | None = None
        self.error: Exception | None = None
        self.target = target
        self.deadline = deadline


class RemoteCaller:
    """A caller on another node whose call is being handled here: it sits in
    ``node._calls`` under a local ref, like a local caller, and its answer goes back
    as a frame (``_remote.Remote.answer``)."""

    __slots__ = ("caller", "deadline", "peer", "ref", "remote")

    def __init__(self, remote: Any, peer: Any, ref: int, caller: Pid | None, deadline: float) -> None:
        self.remote = remote
        self.peer = peer
        self.ref = ref
        self.caller = caller
        self.deadline = deadline


class _RequestWaiter:
    """A process awaiting the reply to its own ``request`` (answered by a message)."""

    __slots__ = ("deadline", "proc", "target", "timer")

    def __init__(self, proc: Process, target: object, deadline: float) -> None:
        self.proc = proc
        self.timer = 0
        self.target = target
        self.deadline = deadline
