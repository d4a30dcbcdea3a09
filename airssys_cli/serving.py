"""Serving clients the node does not control: the control socket and the metrics port.

Every connection is capped (at most ``max_clients`` at once; the next one gets a short
refusal and is closed), every wait on a client has a deadline (``timeout``), and the
accept loop outlives the errors ``accept`` gives when the process or the system runs out
of file descriptors or buffers: the node keeps running and accepts again once clients
close.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import attrs
import trio

from .render import escape

log = logging.getLogger("airssys_cli.serving")

DEFAULT_CLIENT_TIMEOUT = 10.0
DEFAULT_MAX_CLIENTS = 64
MAX_CLIENT_TIMEOUT = 3600.0
MAX_MAX_CLIENTS = 100_000

#: What ``accept`` returns when the process (EMFILE) or the system (ENFILE) has no file
#: descriptor left, or the kernel no memory for one more socket: the same set trio's
#: ``serve_listeners`` waits out. The node sleeps ``ACCEPT_RETRY`` and tries again.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY = 0.1


def check_client_timeout(value: Any, field: str = "client timeout") -> float:
    """``value`` as seconds to wait for a client: a finite number > 0 and <= 3600."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or not 0 < value <= MAX_CLIENT_TIMEOUT:
        raise ValueError(f"{field} must be a finite number of seconds > 0 and <= {MAX_CLIENT_TIMEOUT:g}, got {value!r}")
    return float(value)


def check_max_clients(value: Any, field: str = "max clients") -> int:
    """``value`` as a connection cap: an integer >= 1 and <= 100000."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_MAX_CLIENTS:
        raise ValueError(f"{field} must be >= 1 and <= {MAX_MAX_CLIENTS}, got {value!r}")
    return value


def _timeout(_: Any, attribute: Any, value: Any) -> None:
    check_client_timeout(value, attribute.name)


def _cap(_: Any, attribute: Any, value: Any) -> None:
    check_max_clients(value, attribute.name)


@attrs.frozen
class ClientLimits:
    """How much a client of the control socket or the metrics port may hold."""

    timeout: float = attrs.field(default=DEFAULT_CLIENT_TIMEOUT, validator=_timeout)
    """Seconds a client has to send its request, and to take each part of the answer."""
    max_clients: int = attrs.field(default=DEFAULT_MAX_CLIENTS, validator=_cap)
    """Connections served at once; the next ones are refused."""


Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def serve_clients(listener: trio.SocketListener, handle: Handler, refuse: Handler,
                        limits: ClientLimits, what: str) -> NoReturn:
    """Accept on ``listener`` forever: ``handle`` each connection while fewer than
    ``limits.max_clients`` are being served, else ``refuse`` it; both are given at most
    ``limits.timeout`` for what they send and the connection is closed after them."""
    active = 0
    failures = 0

    async def run(stream: trio.SocketStream, handler: Handler, counted: bool) -> None:
        nonlocal active
        try:
            async with stream:
                await handler(stream)
        except Exception as exc:
            if not _client_gone(exc):
                # A bug in a handler ends that connection, never the node. One line,
                # escaped: the text may carry a client's or a guest's bytes.
                log.warning("%s: a connection failed: %s", what, escape(f"{type(exc).__name__}: {exc}")[:500])
        finally:
            if counted:
                active -= 1

    async with listener, trio.open_nursery() as nursery:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # Out of descriptors (or any other failing accept): the node must not end
                # for it. One line when it starts and one when it is over, not one per
                # retry, so that a long exhaustion does not flood stderr.
                if failures == 0:
                    log.warning("%s: accept failed (%s); retrying every %.1f s", what,
                                errno.errorcode.get(exc.errno or 0, exc.strerror or exc), ACCEPT_RETRY)
                failures += 1
                await trio.sleep(ACCEPT_RETRY)
                continue
            if failures:
                log.warning("%s: accepting again after %d failed accepts", what, failures)
                failures = 0
            if active >= limits.max_clients:
                nursery.start_soon(run, stream, refuse, False)
            else:
                active += 1
                nursery.start_soon(run, stream, handle, True)


def _client_gone(exc: BaseException) -> bool:
    """The client went away or stalled (possibly reported through a nursery's group):
    its connection alone ends, and that is no news."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_client_gone(inner) for inner in exc.exceptions)
    return isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError))


async def send_within(stream: trio.SocketStream, data: bytes, limits: ClientLimits) -> None:
    """``stream.send_all(data)`` or :class:`trio.TooSlowError` after ``limits.timeout``
    (a client that does not read cannot hold the node's task or memory)."""
    with trio.fail_after(limits.timeout):
        await stream.send_all(data)
