"""A node's one NATS connection: nats-py on its own asyncio loop in its own thread,
bridged to the trio thread with batched hand-offs.

Why a thread and not trio-asyncio: measured for issue #14 (2 vCPUs, loopback), the thread
bridge with one wake-up per burst moved 460 k msg/s out and 130 k msg/s in, per-message
crossings were 11x slower inbound, and trio-asyncio lost messages when a trio channel was
full inside a nats-py callback. This module, measured the same way (two processes, 100 B
messages): 1.1 to 3.2 M msg/s into the outbound deque, 100 to 117 k msg/s received, one
``on_batch`` per 60 to 240 messages; a trio -> loop -> trio crossing 83 us p50.

How the two threads meet:

* **Outbound** (trio -> asyncio): :meth:`NatsTransport.publish` and every request/KV call
  append to one deque and wake the loop only if no wake-up is already pending (one
  ``call_soon_threadsafe`` per burst). The loop's sender task drains the deque in order,
  yielding every ``_SEND_SLICE`` messages so nats-py's flusher and reader keep running.
  Bound: whatever callers put. The protocol holds a credit window per peer, so at most
  ``window`` messages per peer are ever queued here; nothing else bounds it.
* **Inbound** (asyncio -> trio): received messages, connection state changes, publish
  failures, KV watch changes and the results of calls are appended to a second deque,
  in arrival order; the trio thread is woken once per burst (``run_sync_soon``) and hands
  everything to ``on_batch`` in chunks of at most ``_BATCH_LIMIT`` items. Bound: the
  senders' credit (window x peers) plus heartbeats; as a safety valve, past
  ``INBOUND_LIMIT_MESSAGES`` messages or ``INBOUND_LIMIT_BYTES`` bytes waiting, further
  received messages are dropped and each drop is logged as an error on the
  ``airssys_actors.cluster`` logger (the protocol's per-pair sequence numbers turn such
  a gap into ``noconnection``). nats-py's own per-subscription queues never fill: their
  limits are set far above what one socket read can hold, and the callback that empties
  them never waits. A slow-consumer drop by nats-py is logged as an error too.

Failures: a publish that cannot be sent while disconnected comes back through
``on_batch`` as :class:`PublishFailed` (nats-py's ``pending_size=0``: nothing is buffered
during an outage to be replayed later). Messages already handed to nats-py when the
connection drops may be lost, or, if nats-py still held them unsent, go out right after
the reconnect, before ``StateChange("reconnected")`` reaches ``on_batch``: the protocol's
channel epochs and sequence numbers are what tell either case from a live channel. A
message larger than the server's ``max_payload`` is refused at
:meth:`NatsTransport.publish` with :class:`MessageTooLarge`: the sender learns it at
once, in its own task.

Lifetime: the thread is not a daemon and :meth:`NatsTransport.close` joins it. If the
trio run ends without ``close()``, the loop notices within a second (its next hand-off
to trio fails) and stops, so the process can still exit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ._clusterconfig import ClusterConfig
from ._credentials import BadCredential, check_credentials
from ._errors import ActorError

log = logging.getLogger("airssys_actors.cluster")

#: Received messages waiting for the trio thread before new ones are dropped (logged).
INBOUND_LIMIT_MESSAGES = 1 << 20
#: Bytes of received payload waiting for the trio thread before new ones are dropped.
INBOUND_LIMIT_BYTES = 256 << 20
#: At most this many items per on_batch call, so one burst does not starve trio tasks.
_BATCH_LIMIT = 4096
#: The sender yields to the loop after this many publishes (nats-py flushes then).
_SEND_SLICE = 1024
#: nats-py's per-subscription queue limits: far above one socket read (32 KiB of messages).
_SUB_PENDING_MSGS = 1 << 20
_SUB_PENDING_BYTES = 1 << 30
#: How long close() waits for nats-py to drain before closing hard; close() as a whole
#: is bounded by _CLOSE_BOUND.
_DRAIN_TIMEOUT = 1.0
_CLOSE_BOUND = 2.0
#: Distinct errors of the first connect's attempts that ClusterUnreachable names.
_CONNECT_ERRORS_SHOWN = 3
#: JetStream error codes for "wrong last sequence" (nats-server JSStreamWrongLastSequence*).
_WRONG_LAST_SEQUENCE = (10071, 10164)


class TransportError(ActorError):
    """The cluster connection failed an operation."""


class ClusterUnreachable(TransportError):
    """No NATS server answered within ``connect_timeout``."""


class NotConnected(TransportError):
    """The transport is disconnected (reconnecting) or closed."""


class NoResponders(TransportError):
    """A request found nobody subscribed to its subject."""


class RequestTimedOut(TransportError):
    """A request or KV operation got no answer within its timeout."""


class KeyExists(TransportError):
    """``kv_create`` on a key that has a value."""


class WrongRevision(TransportError):
    """``kv_update``/``kv_delete`` with a ``last`` revision that is not the key's latest."""


class MessageTooLarge(TransportError):
    """A publish larger than the server's ``max_payload``."""


@attrs.frozen
class Inbound:
    """One received NATS message."""

    subject: str
    data: bytes
    reply: str | None


@attrs.frozen
class StateChange:
    """The connection went ``"disconnected"``, came back (``"reconnected"``) or was
    ``"closed"`` by the client library; in order with the messages around it."""

    state: str


@attrs.frozen
class PublishFailed:
    """A publish that was not sent; ``reason`` says why (``"disconnected"`` mostly)."""

    subject: str
    data: bytes
    reason: str = "disconnected"


@attrs.frozen
class KvChange:
    """A change seen by a :meth:`NatsTransport.kv_watch`. ``deleted`` is also true for a
    purge and for a TTL/max-age expiry marker; ``value`` is then ``None``."""

    bucket: str
    key: str
    value: bytes | None
    revision: int
    deleted: bool


Event = Inbound | StateChange | PublishFailed | KvChange


class _Op:
    """One request/KV call in flight: made on the trio thread, run on the loop, its
    outcome handed back through the inbound deque."""

    __slots__ = ("cancelled", "done", "error", "make", "result", "task")

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self.make = make
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False


class _Cancel:
    __slots__ = ("op",)

    def __init__(self, op: _Op) -> None:
        self.op = op


class _Done:
    __slots__ = ("error", "op", "result")

    def __init__(self, op: _Op, result: Any, error: BaseException | None) -> None:
        self.op = op
        self.result = result
        self.error = error


class _Flush:
    __slots__ = ()


@attrs.define
class _Bucket:
    """A bound KV bucket, loop side."""

    name: str
    stream: str
    prefix: str
    direct: bool


@attrs.define
class _Watch:
    """A running kv_watch, loop side: restarted after a reconnect, deduplicated by revision."""

    bucket: _Bucket
    pattern: str
    seen: dict[str, int] = attrs.field(factory=dict)
    task: asyncio.Task[None] | None = None
    watcher: Any = None


def _check_subject(name: str, subject: object) -> str:
    if not isinstance(subject, str) or not subject or any(c in subject for c in " \t\r\n"):
        raise TransportError(f"{name} must be a non-empty NATS subject without spaces, got {subject!r:.80}")
    return subject


class NatsTransport:
    """One node's NATS connection (see the module docstring for the threading).

    Every method is called from the trio thread. ``on_batch`` is called on the trio
    thread, once per burst, with everything received since the previous call, in
    arrival order; never after :meth:`close` has begun.
    """

    def __init__(self, config: ClusterConfig, on_batch: Callable[[list[Event]], None]) -> None:
        if not isinstance(config, ClusterConfig):
            raise TypeError(f"config must be a ClusterConfig, got {type(config).__name__}")
        self._config = config
        self._on_batch = on_batch
        self._state = "new"  # new -> starting -> running -> closing -> closed
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished = trio.Event()  # the loop thread is about to return
        self._closed = trio.Event()
        # Outbound: trio appends, the loop pops. Items: (subject, data, reply) tuples, or
        # _Op/_Cancel/_Flush. The flag is set by the producer and cleared by the consumer
        # before it drains: under the GIL this loses no wake-up (a spare one is harmless).
        self._outbound: collections.deque[Any] = collections.deque()
        self._out_scheduled = False
        self._out_wakeup: asyncio.Event | None = None
        # Inbound: the loop appends, trio pops; same flag protocol.
        self._inbound: collections.deque[Any] = collections.deque()
        self._in_scheduled = False
        # Each counter is written by one thread only (no += across threads): waiting =
        # added (loop) - taken (trio).
        self._in_added_messages = self._in_added_bytes = 0
        self._in_taken_messages = self._in_taken_bytes = 0
        self._stop_requested = False
        self.dropped_inbound = 0
        """Received messages dropped because the inbound hand-off was over its limit."""
        self._ops: set[_Op] = set()
        self._start_op: _Op | None = None
        self._connected = False  # trio side: as of the last StateChange delivered
        self._max_payload = 0
        # Loop side only:
        self._nc: Any = None
        self._js: Any = None
        self._down = False
        self._loop_closing = False
        self._buckets: dict[str, _Bucket] = {}
        self._subs: list[Any] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._watches: list[_Watch] = []
        self._last_error = ""
        self._tls: ssl.SSLContext | None = None  # built by _check_files

    # ---- trio side -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Running and connected, as of the last state change handed to ``on_batch``."""
        return self._state == "running" and self._connected

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (from its INFO; 0 before start)."""
        return self._max_payload

    async def start(self, subjects: list[str]) -> None:
        """Start the loop thread, connect and subscribe to each subject (one NATS
        subscription per subject). Raises :class:`ClusterUnreachable` if no server
        answers within ``connect_timeout``."""
        if self._state != "new":
            raise TransportError(f"start() on a transport that is {self._state}")
        if isinstance(subjects, str) or not isinstance(subjects, (list, tuple)):
            raise TransportError(f"subjects must be a list of subjects, got {type(subjects).__name__}")
        subjects = [_check_subject("subjects", s) for s in subjects]
        self._check_files()
        try:
            import nats  # noqa: F401  (only to fail here, with the way to get it)
        except ImportError:
            raise TransportError("a cluster needs nats-py: pip install 'airssys-actors[cluster]'") from None
        self._state = "starting"
        self._token = trio.lowlevel.current_trio_token()
        op = self._start_op = _Op(lambda: self._connect(subjects))
        self._ops.add(op)
        self._thread = threading.Thread(target=self._thread_main, args=(op,), name="airssys-nats", daemon=False)
        self._thread.start()
        try:
            await op.done.wait()
        except BaseException:
            await self._shutdown()
            raise
        finally:
            self._ops.discard(op)
        if op.error is not None:
            await self._shutdown()
            raise op.error

    def publish(self, subject: str, data: bytes, reply: str | None = None) -> None:
        """Queue a message; non-blocking. A message that cannot be sent comes back as
        :class:`PublishFailed`. :class:`NotConnected` once closed; :class:`MessageTooLarge`
        past the server's ``max_payload``."""
        if self._state != "running":
            raise NotConnected(f"publish on a transport that is {self._state}")
        if type(data) is not bytes or type(subject) is not str or (reply is not None and type(reply) is not str):
            _check_publish(subject, data, reply)
        if len(data) > self._max_payload:
            raise MessageTooLarge(f"a message of {len(data)} bytes is over the server's max_payload of "
                                  f"{self._max_payload} bytes (subject {subject!r:.80})")
        self._outbound.append((subject, data, reply))
        if not self._out_scheduled:
            self._wake_loop()

    def flush_soon(self) -> None:
        """Ask the loop to flush to the server now (it also flushes after every burst)."""
        if self._state != "running":
            raise NotConnected(f"flush on a transport that is {self._state}")
        self._outbound.append(_Flush())
        if not self._out_scheduled:
            self._wake_loop()

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        """A NATS request: the first reply's payload. :class:`NoResponders` if nobody is
        subscribed, :class:`RequestTimedOut`, :class:`NotConnected`."""
        _check_subject("subject", subject)
        _check_bytes("data", data)
        timeout = _positive_seconds("timeout", timeout)

        async def run() -> bytes:
            msg = await self._nc.request(subject, data, timeout=timeout)
            return msg.data

        return await self._call(run)

    async def kv_bucket(self, bucket: str, *, history: int = 1, ttl: float | None = None) -> None:
        """Bind the JetStream KV bucket, creating it (file storage) if it does not exist.
        ``ttl``: values not rewritten within it expire (a watcher sees a deleted change)."""
        _check_bucket(bucket)
        if isinstance(history, bool) or not isinstance(history, int) or not 1 <= history <= 64:
            raise TransportError(f"history must be a whole number from 1 to 64, got {history!r:.40}")
        if ttl is not None:
            ttl = _positive_seconds("ttl", ttl)
        await self._call(lambda: self._bind_bucket(bucket, history, ttl))

    async def kv_create(self, bucket: str, key: str, value: bytes, *, ttl: float | None = None) -> int:
        """Create ``key`` if it has no value (a deleted key or an expiry marker counts as
        none); its revision. :class:`KeyExists` otherwise. ``ttl`` (whole seconds, at least
        1): this value expires on its own."""
        _check_key(key)
        _check_bytes("value", value)
        ttl_header = _ttl_header(ttl)
        return await self._call(lambda: self._kv_create(bucket, key, value, ttl_header))

    async def kv_update(self, bucket: str, key: str, value: bytes, last: int, *, ttl: float | None = None) -> int:
        """Write ``key`` if its latest revision is ``last``; the new revision.
        :class:`WrongRevision` otherwise."""
        _check_key(key)
        _check_bytes("value", value)
        last = _revision("last", last)
        ttl_header = _ttl_header(ttl)
        return await self._call(lambda: self._kv_write(bucket, key, value, last, ttl_header))

    async def kv_delete(self, bucket: str, key: str, last: int | None = None) -> None:
        """Delete ``key`` (only if its latest revision is ``last``, when given:
        :class:`WrongRevision` otherwise). Deleting an absent key is fine."""
        _check_key(key)
        if last is not None:
            last = _revision("last", last)
        await self._call(lambda: self._kv_delete(bucket, key, last))

    async def kv_get(self, bucket: str, key: str) -> tuple[bytes, int] | None:
        """``(value, revision)``, or ``None`` if the key has no value (never written,
        deleted, purged or expired)."""
        _check_key(key)
        return await self._call(lambda: self._kv_get(bucket, key))

    async def kv_watch(self, bucket: str, pattern: str = ">") -> None:
        """Watch keys matching ``pattern``: every current value, then every change, arrives
        as :class:`KvChange` through ``on_batch``. Returns once the current values have
        been handed over. Survives reconnects (restarted, nothing delivered twice)."""
        if pattern != ">":
            _check_key(pattern, wildcards=True)
        await self._call(lambda: self._start_watch(bucket, pattern))

    async def close(self) -> None:
        """Drain and close the connection, stop the loop and join its thread. Bounded
        (about 2 s), shielded from cancellation, idempotent."""
        with trio.CancelScope(shield=True):
            if self._state in ("closing", "closed"):
                await self._closed.wait()
                return
            if self._state == "new":
                self._state = "closed"
                self._closed.set()
                return
            await self._shutdown()

    # ---- trio side internals ---------------------------------------------------------

    def _check_files(self) -> None:
        # On the trio side, before any thread starts: a bad file is an error naming its
        # field, not every connect attempt's error (or, for a creds file without a JWT,
        # nats-py reading it forever on the loop thread).
        try:
            self._tls = check_credentials(self._config)
        except BadCredential as exc:
            raise TransportError(str(exc)) from None

    def _wake_loop(self) -> None:
        self._out_scheduled = True
        loop, wakeup = self._loop, self._out_wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the loop has stopped: closing
                pass

    async def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        if self._state != "running":
            raise NotConnected(f"transport is {self._state}")
        op = _Op(make)
        self._ops.add(op)
        self._outbound.append(op)
        if not self._out_scheduled:
            self._wake_loop()
        try:
            await op.done.wait()
        except BaseException:
            if not op.done.is_set():
                # Cancelled: the loop cancels the asyncio task; its outcome is dropped.
                self._outbound.append(_Cancel(op))
                if not self._out_scheduled:
                    self._wake_loop()
            raise
        finally:
            self._ops.discard(op)
        if op.error is not None:
            raise op.error
        return op.result

    def _deliver(self) -> None:
        """Runs on the trio thread (run_sync_soon): hand the inbound burst over."""
        self._in_scheduled = False
        inbound = self._inbound
        count = min(len(inbound), _BATCH_LIMIT)
        batch: list[Event] = []
        messages = size = 0
        for _ in range(count):
            item = inbound.popleft()
            kind = type(item)
            if kind is Inbound:
                messages += 1
                size += len(item.data)
                batch.append(item)
            elif kind is _Done:
                op = item.op
                if not op.done.is_set():
                    op.result, op.error = item.result, item.error
                    op.done.set()
                    if op is self._start_op and op.error is None:
                        # Running from here: a message that came with this burst is
                        # handed over, and on_batch may publish.
                        self._max_payload = op.result
                        self._connected = True
                        self._state = "running"
            elif kind is StateChange:
                self._connected = item.state == "reconnected"
                batch.append(item)
            else:
                batch.append(item)
        self._in_taken_messages += messages
        self._in_taken_bytes += size
        if inbound and not self._in_scheduled:
            self._in_scheduled = True
            self._token.run_sync_soon(self._deliver)  # the rest next turn: trio tasks run between
        if batch and self._state == "running":
            try:
                self._on_batch(batch)
            except Exception:
                # Raised into run_sync_soon it would crash the whole trio run.
                log.exception("the cluster's on_batch callback raised; the batch of %d is lost", len(batch))

    async def _shutdown(self) -> None:
        self._state = "closing"
        self._connected = False
        # Read by the loop right after it starts: a close() before the loop exists still
        # stops it (the loop is published before it looks at the flag).
        self._stop_requested = True
        for op in list(self._ops):
            if not op.done.is_set():
                op.error = NotConnected("the transport closed")
                op.done.set()
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._begin_stop)
            except RuntimeError:
                pass
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_CLOSE_BOUND):
                await self._finished.wait()
            if self._thread is not None:
                self._thread.join(timeout=0.2)
                if self._thread.is_alive():
                    log.error("the NATS thread did not stop within %.1f s", _CLOSE_BOUND)
        self._state = "closed"
        self._closed.set()

    # ---- loop side -------------------------------------------------------------------

    def _push(self, item: Any) -> None:
        """Loop side: hand an item to the trio thread (one wake-up per burst)."""
        self._inbound.append(item)
        if not self._in_scheduled:
            self._in_scheduled = True
            try:
                self._token.run_sync_soon(self._deliver)
            except trio.RunFinishedError:
                # The trio run ended without close(): stop, or the thread keeps the process.
                self._begin_stop()

    def _push_message(self, msg: Any) -> None:
        data = msg.data
        messages = self._in_added_messages - self._in_taken_messages
        size = self._in_added_bytes - self._in_taken_bytes
        if messages >= INBOUND_LIMIT_MESSAGES or size >= INBOUND_LIMIT_BYTES:
            self.dropped_inbound += 1
            log.error("inbound hand-off full (%d messages, %d bytes waiting): dropped a message on %s",
                      messages, size, msg.subject)
            return
        self._in_added_messages += 1
        self._in_added_bytes += len(data)
        self._push(Inbound(msg.subject, data, msg.reply or None))

    def _thread_main(self, connect: _Op) -> None:
        try:
            asyncio.run(self._loop_main(connect))
        except BaseException:
            log.exception("the NATS loop thread failed")
        finally:
            try:
                self._token.run_sync_soon(self._finished.set)
            except trio.RunFinishedError:
                pass

    async def _loop_main(self, connect: _Op) -> None:
        self._loop = asyncio.get_running_loop()
        self._out_wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._connect_task = asyncio.create_task(self._perform(connect))
        if self._stop_requested:
            self._begin_stop()
        await asyncio.gather(self._connect_task, return_exceptions=True)
        if connect.error is not None or self._nc is None or self._loop_closing:
            await self._close_nc()
            return
        sender = asyncio.create_task(self._sender())
        watchdog = asyncio.create_task(self._watchdog())
        if self._outbound:
            self._out_wakeup.set()
        try:
            await self._stop.wait()
        finally:
            # Send what was published before close(), then drain (bounded), then stop.
            sender.cancel()
            watchdog.cancel()
            await asyncio.gather(sender, watchdog, return_exceptions=True)
            await self._send_outbound(final=True)
            for watch in self._watches:
                if watch.task is not None:
                    watch.task.cancel()
            await asyncio.gather(*(w.task for w in self._watches if w.task is not None), return_exceptions=True)
            await self._close_nc()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _begin_stop(self) -> None:
        self._loop_closing = True
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        connecting = getattr(self, "_connect_task", None)
        if connecting is not None and not connecting.done():
            self._cancel_until_done(connecting)  # a close() during start(): do not wait out connect_timeout

    def _cancel_until_done(self, task: asyncio.Task[Any]) -> None:
        # nats-py swallows a CancelledError that lands while its connect loop closes a
        # failed attempt (its _close waits under ``except CancelledError: pass``) and
        # then tries again: cancel again, shortly, until the cancellation takes.
        if not task.done():
            task.cancel()
            asyncio.get_running_loop().call_later(0.02, self._cancel_until_done, task)

    async def _close_nc(self) -> None:
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        try:
            if nc.is_connected:
                await asyncio.wait_for(nc.drain(), _DRAIN_TIMEOUT)
        except BaseException as exc:
            log.debug("drain on close: %r", exc)
        try:
            await asyncio.wait_for(nc.close(), 0.5)
        except BaseException as exc:
            log.debug("close: %r", exc)

    async def _watchdog(self) -> None:
        # A trio run that ended without close() must not leave this non-daemon thread.
        while True:
            await asyncio.sleep(1.0)
            try:
                self._token.run_sync_soon(_nothing)
            except trio.RunFinishedError:
                self._begin_stop()
                return

    async def _sender(self) -> None:
        wakeup = self._out_wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            self._out_scheduled = False
            await self._send_outbound()

    async def _send_outbound(self, final: bool = False) -> None:
        outbound = self._outbound
        nc = self._nc
        sent = 0
        while outbound:
            item = outbound.popleft()
            if type(item) is tuple:
                subject, data, reply = item
                try:
                    if _unroutable(subject) or (reply and _unroutable(reply)):
                        # The server would drop these without a word; nats-py checks
                        # only for white space.
                        raise _bad_subject()
                    await nc.publish(subject, data, reply=reply or "")
                except Exception as exc:
                    self._publish_failed(subject, data, exc)
                sent += 1
                if sent % _SEND_SLICE == 0 and not final:
                    await asyncio.sleep(0)
            elif type(item) is _Op:
                if not item.cancelled and not final:
                    item.task = asyncio.create_task(self._perform(item))
            elif type(item) is _Cancel:
                op = item.op
                op.cancelled = True
                if op.task is not None:
                    op.task.cancel()
            elif type(item) is _Flush and not final:
                task = asyncio.create_task(self._flush())
                self._flushes.add(task)  # the loop holds tasks weakly
                task.add_done_callback(self._flushes.discard)

    def _publish_failed(self, subject: str, data: bytes, exc: BaseException) -> None:
        import nats.errors as ne

        if isinstance(exc, (ne.OutboundBufferLimitError, ne.ConnectionReconnectingError)):
            reason = "disconnected"
        elif isinstance(exc, (ne.ConnectionClosedError, ne.ConnectionDrainingError)):
            reason = "closed"
        elif isinstance(exc, ne.MaxPayloadError):
            reason = "over the server's max_payload"
        elif isinstance(exc, ne.BadSubjectError):
            reason = f"not a valid subject: {subject!r:.80}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        if not self._loop_closing:
            self._push(PublishFailed(subject, data, reason))

    async def _flush(self) -> None:
        try:
            await self._nc.flush(timeout=self._config.request_timeout)
        except Exception as exc:
            log.debug("flush: %r", exc)

    async def _perform(self, op: _Op) -> None:
        try:
            result, error = await op.make(), None
        except asyncio.CancelledError:
            if op.cancelled or self._loop_closing:
                return
            result, error = None, NotConnected("the operation was cancelled by the transport")
        except Exception as exc:
            result, error = None, self._translate(exc)
        self._push(_Done(op, result, error))

    def _translate(self, exc: BaseException) -> BaseException:
        """A nats-py error as the transport's own (the cause kept as __cause__)."""
        import nats.errors as ne
        import nats.js.errors as je

        if isinstance(exc, TransportError):
            return exc
        if isinstance(exc, ne.NoRespondersError):
            error: TransportError = NoResponders("no responders")
        elif isinstance(exc, je.NoStreamResponseError):
            error = TransportError("JetStream is not available on the server (start nats-server with -js)")
        elif isinstance(exc, (ne.TimeoutError, asyncio.TimeoutError)):
            error = RequestTimedOut("no answer within the timeout")
        elif isinstance(exc, (ne.OutboundBufferLimitError, ne.ConnectionReconnectingError, ne.ConnectionClosedError,
                              ne.ConnectionDrainingError, ne.StaleConnectionError)):
            error = NotConnected("not connected to the cluster")
        elif isinstance(exc, ne.BadSubjectError):
            error = TransportError("not a valid NATS subject")
        elif isinstance(exc, ne.MaxPayloadError):
            error = MessageTooLarge(f"over the server's max_payload of {self._nc.max_payload} bytes")
        elif isinstance(exc, je.BucketNotFoundError):
            error = TransportError("no such KV bucket")
        elif isinstance(exc, je.APIError):
            error = TransportError(f"JetStream refused: {exc.description or exc} (code {exc.err_code})")
        else:
            error = TransportError(f"{type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    # ---- loop side: connection -------------------------------------------------------

    async def _connect(self, subjects: list[str]) -> int:
        import nats

        config = self._config
        options: dict[str, Any] = dict(
            servers=list(config.servers),
            connect_timeout=config.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=config.reconnect_wait,
            pending_size=0,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            closed_cb=self._on_closed,
            name=f"airssys.{config.cluster}",
        )
        if config.token is not None:
            options["token"] = config.token
        if config.user is not None:
            options["user"] = config.user
            options["password"] = config.password
        if config.nkeys_seed is not None:
            options["nkeys_seed"] = config.nkeys_seed
        if config.creds is not None:
            options["user_credentials"] = config.creds
        if self._tls is not None:
            options["tls"] = self._tls
        self._connect_errors: list[str] = []
        # nats-py retries the first connect forever with max_reconnect_attempts=-1: the
        # deadline is ours. A refused port fails each attempt at once; the wait between
        # attempts is reconnect_wait.
        try:
            self._nc = await asyncio.wait_for(nats.connect(**options), config.connect_timeout)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and not isinstance(exc, asyncio.TimeoutError):
                raise
            errors = self._connect_errors or [f"{type(exc).__name__}: {exc}"]
            raise ClusterUnreachable(
                f"no NATS server answered within {config.connect_timeout:g} s at {', '.join(config.servers)} "
                f"(last error{'s' if len(errors) > 1 else ''}: {'; '.join(errors)})") from None
        nc = self._nc
        for subject in subjects:
            self._subs.append(await nc.subscribe(subject, cb=self._on_message, pending_msgs_limit=_SUB_PENDING_MSGS,
                               pending_bytes_limit=_SUB_PENDING_BYTES))
        await nc.flush(timeout=config.connect_timeout)
        self._js = nc.jetstream(timeout=config.request_timeout)
        return nc.max_payload

    async def _on_message(self, msg: Any) -> None:
        if self._down:
            self._report_reconnected()
        self._push_message(msg)

    async def _on_error(self, exc: BaseException) -> None:
        import nats.errors as ne

        if isinstance(exc, ne.SlowConsumerError):
            log.error("nats-py dropped a message on %s: slow consumer (subscription %s)", exc.subject, exc.sid)
            return
        text = f"{type(exc).__name__}: {exc}"
        if self._nc is None:
            # The first connect: ClusterUnreachable names the last few distinct errors,
            # as a server's refusal ("Authorization Violation") is often followed by a
            # bare connection reset on the next attempt.
            if text in self._connect_errors:
                self._connect_errors.remove(text)
            self._connect_errors = [*self._connect_errors, text][-_CONNECT_ERRORS_SHOWN:]
            return
        if text != self._last_error:  # one line per distinct error, not one per retry
            self._last_error = text
            log.warning("NATS: %s", text)

    async def _on_disconnected(self) -> None:
        if self._loop_closing or self._nc is None or self._down:
            return
        # Messages already read sit in nats-py's per-subscription queues: let them reach
        # the inbound deque first, so the state change comes after them.
        for _ in range(100):
            if not any(sub.pending_msgs for sub in self._subs):
                break
            await asyncio.sleep(0)
        self._down = True
        self._push(StateChange("disconnected"))

    async def _on_reconnected(self) -> None:
        self._last_error = ""
        if self._down:
            self._report_reconnected()

    def _report_reconnected(self) -> None:
        # From whichever comes first after a reconnect: the callback or a message.
        self._down = False
        if not self._loop_closing:
            self._push(StateChange("reconnected"))
            for watch in self._watches:
                self._restart_watch(watch)

    async def _on_closed(self) -> None:
        if not self._loop_closing:
            self._push(StateChange("closed"))

    # ---- loop side: JetStream KV -----------------------------------------------------

    async def _bind_bucket(self, name: str, history: int, ttl: float | None) -> None:
        import nats.js.api as api
        import nats.js.errors as je

        js = self._js
        try:
            kv = await js.key_value(name)
        except je.BucketNotFoundError:
            params: dict[str, Any] = dict(bucket=name, history=history, storage=api.StorageType.FILE)
            if ttl is not None:
                params["ttl"] = ttl
                # Expiry leaves a marker a watcher sees (server 2.11+), kept at least 1 s.
                params["limit_marker_ttl"] = max(1.0, ttl)
            try:
                kv = await js.create_key_value(**params)
            except je.BadRequestError:
                kv = await js.key_value(name)  # another node created it first
        info = await js.stream_info(f"KV_{name}")
        self._buckets[name] = _Bucket(name=name, stream=kv._stream, prefix=f"$KV.{name}.",
                                      direct=bool(info.config.allow_direct))

    def _bucket(self, name: str) -> _Bucket:
        try:
            return self._buckets[name]
        except KeyError:
            raise TransportError(f"KV bucket {name!r:.80} is not bound: call kv_bucket() first") from None

    async def _latest(self, bucket: _Bucket, key: str) -> tuple[bytes | None, int, bool] | None:
        """The key's latest stream message: (data, revision, is_value), None if none."""
        import nats.js.errors as je

        try:
            msg = await self._js.get_msg(bucket.stream, subject=bucket.prefix + key, direct=bucket.direct)
        except je.NotFoundError:
            return None
        headers = msg.headers or {}
        # A delete, a purge, or a server-placed expiry marker (Nats-Marker-Reason, 2.11+):
        # nats-py 2.16 returns a marker as a value of None; here it is no value.
        tombstone = headers.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers
        return (msg.data or b""), msg.seq, not tombstone

    async def _kv_get(self, name: str, key: str) -> tuple[bytes, int] | None:
        latest = await self._latest(self._bucket(name), key)
        if latest is None or not latest[2]:
            return None
        return latest[0], latest[1]

    async def _publish_kv(self, bucket: _Bucket, key: str, value: bytes, headers: dict[str, str]) -> int:
        import nats.js.errors as je

        try:
            ack = await self._js.publish(bucket.prefix + key, value, headers=headers)
        except je.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise WrongRevision(f"{bucket.name}/{key}: not at the expected revision") from None
            raise
        return ack.seq

    async def _kv_write(self, name: str, key: str, value: bytes, last: int, ttl: str | None) -> int:
        headers = {"Nats-Expected-Last-Subject-Sequence": str(last)}
        if ttl is not None:
            headers["Nats-TTL"] = ttl
        return await self._publish_kv(self._bucket(name), key, value, headers)

    async def _kv_create(self, name: str, key: str, value: bytes, ttl: str | None) -> int:
        bucket = self._bucket(name)
        last = 0
        for _ in range(3):  # a race with another writer: look again, bounded
            try:
                return await self._kv_write(name, key, value, last, ttl)
            except WrongRevision:
                latest = await self._latest(bucket, key)
                if latest is not None and latest[2]:
                    raise KeyExists(f"{name}/{key} exists (revision {latest[1]})") from None
                last = 0 if latest is None else latest[1]  # a tombstone or marker: claim over it
        raise KeyExists(f"{name}/{key}: lost three races to create it")

    async def _kv_delete(self, name: str, key: str, last: int | None) -> None:
        headers = {"KV-Operation": "DEL"}
        if last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        await self._publish_kv(self._bucket(name), key, b"", headers)

    async def _start_watch(self, name: str, pattern: str) -> None:
        watch = _Watch(bucket=self._bucket(name), pattern=pattern)
        initial = asyncio.get_running_loop().create_future()
        watch.task = asyncio.create_task(self._run_watch(watch, initial))
        self._watches.append(watch)
        await initial  # every current value is in the inbound deque before our _Done

    def _restart_watch(self, watch: _Watch) -> None:
        if watch.task is not None:
            watch.task.cancel()
        watch.task = asyncio.create_task(self._run_watch(watch, None, previous=watch.task))

    async def _run_watch(self, watch: _Watch, initial: asyncio.Future[None] | None,
                         previous: asyncio.Task[None] | None = None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        kv = None
        delay = 0.1
        while True:
            try:
                if kv is None:
                    kv = await self._js.key_value(watch.bucket.name)
                watcher = await kv.watch(watch.pattern)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if initial is not None:
                    if not initial.done():
                        initial.set_exception(exc)
                    return
                # After a reconnect JetStream may take a moment to come back: retry.
                log.debug("kv watch %s/%s: %r, retrying", watch.bucket.name, watch.pattern, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        watch.watcher = watcher
        try:
            async for entry in watcher:
                if entry is None:  # nats-py's "current values done" marker
                    if initial is not None and not initial.done():
                        initial.set_result(None)
                    continue
                if watch.seen.get(entry.key, 0) >= entry.revision:
                    continue  # seen before the restart
                watch.seen[entry.key] = entry.revision
                deleted = entry.operation in ("DEL", "PURGE")
                self._push(KvChange(watch.bucket.name, entry.key, None if deleted else (entry.value or b""),
                                    entry.revision, deleted))
        finally:
            if initial is not None and not initial.done():
                initial.set_exception(NotConnected("the watch stopped"))
            try:
                await asyncio.wait_for(watcher.stop(), 0.5)
            except BaseException:
                pass


def _check_publish(subject: object, data: object, reply: object) -> None:
    # Off the hot path: reached only when a type is not the plain one.
    if not isinstance(subject, str):
        raise TransportError(f"subject must be a str, got {type(subject).__name__}")
    if not isinstance(data, bytes):
        raise TransportError(f"data must be bytes, got {type(data).__name__}")
    if reply is not None and not isinstance(reply, str):
        raise TransportError(f"reply must be a str or None, got {type(reply).__name__}")


def _unroutable(subject: str) -> bool:
    """Empty tokens or wildcards: a subject nothing can be published to."""
    return not subject or ".." in subject or subject[0] == "." or subject[-1] == "." or "*" in subject \
        or ">" in subject


def _bad_subject() -> BaseException:
    import nats.errors

    return nats.errors.BadSubjectError()


def _check_bytes(name: str, value: object) -> None:
    if not isinstance(value, bytes):
        raise TransportError(f"{name} must be bytes, got {type(value).__name__}")


def _nothing() -> None:
    pass


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TransportError(f"{name} must be a positive finite number of seconds, got {value!r:.40}")
    return float(value)


def _ttl_header(ttl: float | None) -> str | None:
    if ttl is None:
        return None
    ttl = _positive_seconds("ttl", ttl)
    if ttl < 1:
        raise TransportError(f"ttl must be at least 1 second (the server's granularity), got {ttl:g}")
    return str(math.ceil(ttl))


def _revision(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TransportError(f"{name} must be a revision (a whole number >= 0), got {value!r:.40}")
    return value


def _check_bucket(bucket: object) -> None:
    import re

    if not isinstance(bucket, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", bucket):
        raise TransportError(f"bucket must be letters, digits, '_' or '-', got {bucket!r:.80}")


def _check_key(key: object, wildcards: bool = False) -> None:
    import re

    allowed = r"[-/_=.A-Za-z0-9*>]+" if wildcards else r"[-/_=.A-Za-z0-9]+"
    if (not isinstance(key, str) or not re.fullmatch(allowed, key) or len(key) > 1024
            or key.startswith(".") or key.endswith(".") or ".." in key):
        raise TransportError(f"{'pattern' if wildcards else 'key'} must be dot-separated tokens of letters, digits, "
                             f"'-', '_', '/', '=' (nats KV keys), got {key!r:.80}")
